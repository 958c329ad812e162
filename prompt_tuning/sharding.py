"""Where every array of a run lives: a `data` x `model` mesh and T5X's logical-axis rules.

The devices form a `jax.sharding.Mesh` with T5X's two axes: `model` splits each
weight matrix over NUM_PARTITIONS devices, `data` splits the batch over the
model replicas. Every param and key activation of the model already carries a
T5X logical axis name (`models.param_axes`; `nn.with_logical_constraint` in
the layers), and LOGICAL_AXIS_RULES maps those names onto the mesh (T5X's
standard rules by default, `DEFAULT_RULES`): another layout is another table,
never an edit to the model. XLA's SPMD partitioner does the partitioning,
through `jax.jit` with in/out shardings; nothing here splits an array by hand.

    partitioning = Partitioning.create(num_partitions=2)    # 4 x 2 on 8 devices
    frozen = partitioning.put(frozen, partitioning.param_shardings(model, frozen))
    step = partitioning.scoped(jax.jit(fn, in_shardings=..., out_shardings=...))

Multi-host: every process runs the same program on the global mesh;
`data_shard` says which rows of each global batch this process reads (its
seqio `ShardInfo`) and `global_batch` assembles those rows into one global
array. `Partitioning.create()` on one device is a 1 x 1 mesh, and a run on it
computes exactly what it computed before meshes existed.
"""
import contextlib
import dataclasses
import difflib
import functools
import math
from typing import Any, Callable, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from prompt_tuning import tree
from prompt_tuning.models import param_axes

MESH_AXES = ("data", "model")
# T5X's `standard_logical_axis_rules()` for the names this model uses: the batch over
# `data`; vocab, MLP and heads over `model`; everything else, the prompts included
# (Lester et al. keep the prompt axes replicated), on every device.
DEFAULT_RULES = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("joined_kv", "model"),
    ("embed", None),
    ("kv", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
    ("prompt_bank", None),
    ("prompt", None),
    ("prompt_embed", None),
    # The parameter-efficient methods' own axes (prompt_tuning.models.adapters), small
    # and replicated; their other axes (embed, joined_kv, mlp) follow the rules above.
    ("lora_rank", None),
    ("prefix", None),
    ("prefix_embed", None),
    ("prefix_hidden", None),
    ("prefix_out", None),
    ("prompt_layers", None),
)
# Every logical axis name the model writes (params and activation constraints).
LOGICAL_AXES = tuple(name for name, _ in DEFAULT_RULES)
# Which T5Config field (or gin macro) a logical axis's size comes from, for errors.
_SIZE_OF = {"vocab": "vocab_size", "mlp": "mlp_dim", "heads": "num_heads",
            "joined_kv": "num_heads * head_dim", "embed": "emb_dim", "kv": "head_dim",
            "relpos_buckets": "relative_attention_num_buckets",
            "layers": "num_layers (SCAN_LAYERS)", "prompt": "PROMPT_LENGTH",
            "prompt_bank": "the number of prompts K", "prompt_embed": "emb_dim",
            "batch": "BATCH_SIZE", "length": "TASK_FEATURE_LENGTHS",
            "lora_rank": "LoraSpec.rank", "prefix": "PrefixSpec.length",
            "prefix_embed": "emb_dim", "prefix_hidden": "PrefixSpec.hidden_dim",
            "prefix_out": "layers * 2 * num_heads * head_dim",
            "prompt_layers": "num_encoder_layers - 1"}


def mesh_shape(num_partitions: Optional[int] = 1, shape: Optional[Sequence[int]] = None,
               num_devices: Optional[int] = None) -> tuple[int, int]:
  """NUM_PARTITIONS or MESH_SHAPE -> (data, model) sizes that use every device.

  Args:
    num_partitions: NUM_PARTITIONS, devices per model replica (T5X's
      `num_partitions`); the data axis takes the rest.
    shape: MESH_SHAPE, an explicit (data, model); one entry may be -1 (the
      rest of the devices). When given, it wins, and `num_partitions` must be
      1 (its default), None, or its model size.
    num_devices: default `jax.device_count()` (every process's devices).

  Raises:
    ValueError: the mesh does not use exactly the devices there are.
  """
  n = jax.device_count() if num_devices is None else int(num_devices)
  divisors = [d for d in range(1, n + 1) if n % d == 0]
  if shape is None:
    p = 1 if num_partitions is None else num_partitions
    if isinstance(p, bool) or not isinstance(p, int) or p < 1 or n % p:
      raise ValueError(f"NUM_PARTITIONS={num_partitions!r} does not divide the {n} devices; "
                       f"expected one of {divisors}.")
    return n // p, p
  sizes = tuple(shape)
  if (len(sizes) != 2 or any(isinstance(s, bool) or not isinstance(s, int) for s in sizes)
      or any(s == 0 or s < -1 for s in sizes) or sizes.count(-1) > 1):
    raise ValueError(f"MESH_SHAPE={shape!r}; expected (data, model): two ints > 0, one of "
                     "which may be -1.")
  if -1 in sizes:
    known = math.prod(s for s in sizes if s != -1)
    if n % known:
      raise ValueError(f"MESH_SHAPE={shape!r}: {known} does not divide the {n} devices; "
                       f"expected one of {divisors}.")
    sizes = tuple(n // known if s == -1 else s for s in sizes)
  if math.prod(sizes) != n:
    raise ValueError(f"MESH_SHAPE={shape!r} holds {math.prod(sizes)} devices; expected "
                     f"data x model = {n}, the devices there are.")
  if num_partitions not in (None, 1, sizes[1]):
    raise ValueError(f"NUM_PARTITIONS={num_partitions} and MESH_SHAPE={shape!r} disagree; "
                     f"expected NUM_PARTITIONS = {sizes[1]} (MESH_SHAPE's model size) or "
                     "only one of them.")
  return sizes


def make_mesh(num_partitions: Optional[int] = 1, shape: Optional[Sequence[int]] = None,
              devices: Optional[Sequence[Any]] = None) -> Mesh:
  """The (data, model) mesh over `devices` (default all); see `mesh_shape`.

  `model` is the minor axis, so a model replica's devices are neighbours (on one
  host where they fit), as in T5X. Axes are `Auto`: XLA propagates shardings
  between the constraints.
  """
  devices = jax.devices() if devices is None else list(devices)
  sizes = mesh_shape(num_partitions, shape, len(devices))
  return jax.make_mesh(sizes, MESH_AXES, devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES))


def check_rules(rules: Sequence[Sequence[Any]]) -> tuple:
  """Validates LOGICAL_AXIS_RULES: (logical name, mesh axis or None) pairs.

  Raises:
    ValueError: naming the malformed rule, the unknown logical name (with the
      closest known ones) or the unknown mesh axis.
  """
  out = []
  for rule in rules:
    if not isinstance(rule, (tuple, list)) or len(rule) != 2 or not isinstance(rule[0], str):
      raise ValueError(f"LOGICAL_AXIS_RULES entry {rule!r}; expected a pair (logical axis "
                       "name, mesh axis or None), e.g. ('mlp', 'model').")
    name, target = rule[0], rule[1]
    if name not in LOGICAL_AXES:
      close = difflib.get_close_matches(name, LOGICAL_AXES, n=3, cutoff=0.5)
      raise ValueError(f"LOGICAL_AXIS_RULES names the logical axis {name!r}, which the model "
                       f"does not use; expected one of {list(LOGICAL_AXES)}"
                       + (f" (did you mean {' or '.join(close)}?)" if close else "") + ".")
    targets = target if isinstance(target, (tuple, list)) else (target,)
    if target is not None and not all(t in MESH_AXES for t in targets):
      raise ValueError(f"LOGICAL_AXIS_RULES maps {name!r} to {target!r}; expected a mesh "
                       f"axis of {MESH_AXES} or None (replicated).")
    out.append((name, tuple(target) if isinstance(target, list) else target))
  return tuple(out)


def _axis_size(mesh: Mesh, axes) -> int:
  axes = axes if isinstance(axes, tuple) else (axes,)
  return math.prod(mesh.shape[a] for a in axes if a is not None)


@dataclasses.dataclass(frozen=True)
class Partitioning:
  """A mesh plus the rules that place logical axes on it.

  Attributes:
    mesh: the (data, model) `jax.sharding.Mesh`.
    rules: LOGICAL_AXIS_RULES, in flax's precedence order (the first rule
      that names an array's axis and whose mesh axis is still free wins).
  """
  mesh: Mesh
  rules: tuple = DEFAULT_RULES

  @classmethod
  def create(cls, num_partitions: Optional[int] = 1, mesh_shape: Optional[Sequence[int]] = None,
             rules: Optional[Sequence] = None,
             devices: Optional[Sequence[Any]] = None) -> "Partitioning":
    """From NUM_PARTITIONS / MESH_SHAPE / LOGICAL_AXIS_RULES (None: `DEFAULT_RULES`)."""
    return cls(make_mesh(num_partitions, mesh_shape, devices),
               check_rules(DEFAULT_RULES if rules is None else rules))

  @classmethod
  def single_device(cls) -> "Partitioning":
    """A 1 x 1 mesh on the first device: what a call without a mesh always ran on."""
    return cls.create(devices=jax.devices()[:1])

  @property
  def data_size(self) -> int:
    return self.mesh.shape["data"]

  @property
  def model_size(self) -> int:
    return self.mesh.shape["model"]

  def __str__(self) -> str:
    return f"mesh {self.data_size} x {self.model_size} (data x model)"

  # ----------------------------------------------------------- shardings

  def mesh_axes(self, logical: Optional[Sequence[Optional[str]]]) -> PartitionSpec:
    """Logical axis names (one per array dim) -> the mesh `PartitionSpec`."""
    return nn.logical_to_mesh_axes(tuple(logical or ()), self.rules)

  def sharding(self, logical: Optional[Sequence[Optional[str]]]) -> NamedSharding:
    """Logical axis names (one per array dim, None = replicated) -> a `NamedSharding`."""
    return NamedSharding(self.mesh, self.mesh_axes(logical))

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  @property
  def batch_sharding(self) -> NamedSharding:
    """[B, ...] arrays split over the rows (`batch` by the rules; `data` by default)."""
    return self.sharding(("batch",))

  @property
  def batch_ways(self) -> int:
    """How many parts a batch is split into: the size of the mesh axes `batch` maps to."""
    return _axis_size(self.mesh, self.mesh_axes(("batch",))[0])

  def check_batch(self, batch_size: int, name: str = "BATCH_SIZE") -> int:
    """Raises unless the batch splits evenly over the mesh axes `batch` maps to."""
    size = self.batch_ways
    if batch_size % size:
      raise ValueError(f"{name}={batch_size} does not split over the {size} devices of the "
                       f"{self}'s batch axis; expected a multiple of {size}.")
    return batch_size

  def param_shardings(self, model: Any, params: Mapping) -> dict:
    """The `NamedSharding` of every param in `params` (a subtree of the model's).

    Args:
      model: the `Transformer` whose `param_axes` name each param's axes.
      params: any subtree of its params (all, the frozen part, the
        trainable part), as arrays or `jax.ShapeDtypeStruct`s.

    Returns:
      A tree like `params` of `NamedSharding`s.

    Raises:
      ValueError: a param the model does not have, or a sharded axis whose
        size the mesh does not divide (naming the axis, its size, the config
        field it comes from and a param that has it).
    """
    axes = tree.flatten(param_axes(model))
    flat = tree.flatten(params)
    unknown = sorted(set(flat) - set(axes))
    if unknown:
      raise ValueError(f"params {unknown[:5]} are not the model's; expected paths such as "
                       f"{sorted(axes)[:3]}.")
    bad = {}
    for path, value in flat.items():
      for dim, (name, mesh_axis) in enumerate(zip(axes[path], self.mesh_axes(axes[path]))):
        size = _axis_size(self.mesh, mesh_axis)
        if np.shape(value)[dim] % size:
          bad.setdefault(name, (np.shape(value)[dim], mesh_axis, size, path,
                                tuple(np.shape(value))))
    if bad:
      raise ValueError("the mesh does not divide the model: " + "; ".join(
          f"{name} = {dim} ({_SIZE_OF.get(name, name)}; e.g. {path} {shape}) is split over "
          f"{mesh_axis!r} of size {size}, which does not divide it"
          for name, (dim, mesh_axis, size, path, shape) in sorted(bad.items()))
          + f". Expected NUM_PARTITIONS / MESH_SHAPE whose model size divides these "
          f"sizes ({self}), or LOGICAL_AXIS_RULES that replicate the axis.")
    return tree.unflatten({p: self.sharding(axes[p]) for p in flat})

  def like_params(self, state: Any, params: Mapping, shardings: Mapping) -> Any:
    """Shardings for a train state: what holds a param's values gets its sharding.

    A leaf whose "/"-joined path ends with a param's path and whose shape is
    that param's (the trainable params, an optimizer's moments) is placed like
    the param; every other leaf (step, rng, counts, factored moments) is
    replicated. optax's `tree_map_params` cannot tell Adafactor's [1]
    placeholders from moments, hence shapes.

    Args:
      state: any pytree of arrays or `jax.ShapeDtypeStruct`s.
      params: the params (flat or nested) the state holds moments of.
      shardings: their shardings, a tree like `params`.
    """
    flat_params, flat_shardings = tree.flatten(params), tree.flatten(shardings)

    def one(path, leaf):
      name = jax.tree_util.keystr(path, simple=True, separator="/")
      for p, value in flat_params.items():
        if (name == p or name.endswith("/" + p)) and np.shape(leaf) == np.shape(value):
          return flat_shardings[p]
      return self.replicated
    return jax.tree_util.tree_map_with_path(one, state)

  # ----------------------------------------------------------- placement

  def put(self, values: Any, shardings: Any) -> Any:
    """Places host or device arrays on the mesh (`shardings`: a tree or one sharding).

    Every process passes the whole value; each keeps only its devices' parts.
    """
    if isinstance(shardings, jax.sharding.Sharding):
      shardings = jax.tree.map(lambda _: shardings, values)

    def one(x, sharding):
      if isinstance(x, jax.Array) and x.is_fully_addressable == sharding.is_fully_addressable:
        return jax.device_put(x, sharding)  # within this process's devices, or global to global
      host = np.asarray(x)  # from the host: every process holds the whole value
      return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.tree.map(one, values, shardings)

  def data_shard(self, batch_size: int) -> tuple[int, int]:
    """(shard_index, num_shards): the rows of each global batch this process reads.

    A process reads the rows its devices hold: with one process, (0, 1);
    with hosts that each hold one data slice, (host, hosts); hosts sharing a
    slice (a model replica spanning them) read the same rows.

    Raises:
      ValueError: `batch_size` does not split over the batch axis.
    """
    self.check_batch(batch_size)
    index_map = self.batch_sharding.addressable_devices_indices_map((batch_size,))
    rows = sorted({(s[0].start or 0, s[0].stop or batch_size) for s in index_map.values()})
    start, stop = rows[0][0], rows[-1][1]
    covered = sum(b - a for a, b in rows)
    assert covered == stop - start, f"this process's rows {rows} are not contiguous"
    return start // (stop - start), batch_size // (stop - start)

  def global_batch(self, local: Mapping[str, np.ndarray], batch_size: int) -> dict:
    """This process's rows (`data_shard`) -> global [B, ...] arrays on the mesh.

    Args:
      local: [B / num_shards, ...] arrays, the rows this process read.
      batch_size: B, the global batch.
    """
    _, num_shards = self.data_shard(batch_size)
    out = {}
    for key, value in local.items():
      if value.shape[0] * num_shards != batch_size:
        raise ValueError(f"{key} holds {value.shape[0]} rows; expected BATCH_SIZE / "
                         f"num_shards = {batch_size} / {num_shards} on this process.")
      out[key] = jax.make_array_from_process_local_data(
          self.batch_sharding, value, (batch_size,) + value.shape[1:])
    return out

  # ------------------------------------------------------------ tracing

  @contextlib.contextmanager
  def scope(self):
    """The mesh and the rules in scope, so the model's logical constraints resolve."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  def scoped(self, fn: Callable) -> Callable:
    """`fn` (e.g. a jitted step) run in `scope()` on every call, so it traces inside it.

    Give each jitted function one Partitioning: jax's trace cache keys on the
    mesh but not on flax's rules.
    """
    @functools.wraps(fn)
    def run(*args, **kwargs):
      with self.scope():
        return fn(*args, **kwargs)
    return run


def host_arrays(values: Any) -> Any:
  """Every leaf as a numpy array on every process.

  A leaf split across processes is gathered (a collective: every process must
  call this); a replicated or process-local one is copied from a local device.
  """
  def one(x):
    if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
  return jax.tree.map(one, values)


def is_primary() -> bool:
  """Process 0 writes the run's files (metrics, logs, .npy); orbax coordinates the rest."""
  return jax.process_index() == 0
