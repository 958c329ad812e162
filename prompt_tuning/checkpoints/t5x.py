"""T5X checkpoints in: the legacy msgpack + tensorstore layout and the Orbax layout.

Legacy (T5X `checkpoints.Checkpointer`), one directory per step:

    checkpoint_1000000/
      checkpoint                                  # msgpack (flax serialization)
      target.encoder.layers_0.attention.query.kernel/   # zarr array (tensorstore)
      state.param_states.encoder...kernel.v_row/  # optimizer state, also zarr
      ...

The msgpack holds `{"version": 3, "optimizer": {"target": params, "state":
{"step", "param_states"}}}`. A leaf is either the array itself (inline) or
the JSON of a `tensorstore.Spec` (zarr driver) whose kvstore path is relative
to the step directory, so the directory can move, also to and from `gs://`.

Orbax (T5X's `OrbaxCheckpointManagerInterface`): `checkpoint_<step>/state/`
is an Orbax PyTree checkpoint (`_METADATA`, OCDBT files) of the same
`{"target", "state"}` dict.

Only `target` (the params) is read; optimizer state is never loaded.
"""
import copy
import os
import posixpath
import re
from typing import Any, Optional

import jax
import numpy as np
from etils import epath

from prompt_tuning import tree
from prompt_tuning.checkpoints import validation
from prompt_tuning.models import T5Config
from prompt_tuning.prompts import export

CHECKPOINT_FILE = "checkpoint"   # legacy msgpack
ORBAX_METADATA = "_METADATA"     # marks an Orbax PyTree directory
STATE_DIR = "state"              # Orbax item name T5X uses for the train state
_STEP_DIR = re.compile(r"checkpoint_(\d+)")
_GCS = re.compile(r"gs://([^/]+)/?(.*)", re.DOTALL)


def latest_step_dir(model_dir: str) -> Optional[str]:
  """`model_dir/checkpoint_<N>` with the largest N, as T5X picks; None if there is none."""
  steps = []
  for child in epath.Path(model_dir).iterdir():
    match = _STEP_DIR.fullmatch(child.name)
    if match and child.is_dir():
      steps.append((int(match.group(1)), child))
  return os.fspath(max(steps)[1]) if steps else None


# ---------------------------------------------------------------- legacy msgpack


def _is_ts_spec(node: Any) -> bool:
  return isinstance(node, dict) and "driver" in node and ("kvstore" in node or "path" in node)


def _target(contents: Any, file: str) -> dict:
  """The params subtree of a decoded msgpack checkpoint."""
  if not isinstance(contents, dict):
    raise ValueError(f"{file}: not a T5X checkpoint; expected a msgpack map, found "
                     f"{type(contents).__name__}.")
  state = contents.get("optimizer", contents)  # version 0 (plain flax) has no wrapper
  if not isinstance(state, dict) or "target" not in state:
    keys = sorted(state) if isinstance(state, dict) else type(state).__name__
    raise ValueError(f"{file}: no 'target' (params) in the T5X checkpoint; expected "
                     f"{{'version', 'optimizer': {{'target', 'state'}}}}, found {keys}.")
  return state["target"]


def absolute_spec(spec: dict, ckpt_dir: str) -> dict:
  """Points a checkpoint's relative zarr spec at `ckpt_dir` (local or gs://bucket/...).

  The driver follows where the checkpoint is now, not where it was written:
  T5X writes `file` specs locally and `gcs` ones (with a dummy bucket) on GCS.
  Chunking and compression entries are dropped: they describe how the array
  was written, and tensorstore reads them from the array's own metadata.
  """
  spec = copy.deepcopy(spec)
  spec.get("metadata", {}).pop("chunks", None)
  spec.get("metadata", {}).pop("compressor", None)
  kvstore = spec.get("kvstore", {})
  if isinstance(kvstore, dict) and "path" in kvstore:
    relative = kvstore["path"]
  elif "path" in spec:  # tensorstore < 0.1.14 kept the path outside the kvstore
    relative = spec.pop("path")
  else:
    raise ValueError(f"{ckpt_dir}: tensorstore spec without a path: {spec}")
  gcs = _GCS.fullmatch(ckpt_dir)
  if gcs:
    spec["kvstore"] = {"driver": "gcs", "bucket": gcs.group(1),
                       "path": posixpath.join(gcs.group(2), relative)}
  else:
    spec["kvstore"] = {"driver": "file",
                       "path": os.path.join(os.path.abspath(ckpt_dir), relative)}
  return spec


def _abstract_leaf(leaf: Any, name: str, file: str) -> Any:
  if _is_ts_spec(leaf):
    shape = leaf.get("metadata", {}).get("shape")
    if shape is None:
      raise ValueError(f"{file}: tensorstore spec of {name} has no metadata.shape: {leaf}")
    return jax.ShapeDtypeStruct(tuple(shape), np.float32)
  if isinstance(leaf, (np.ndarray, np.generic)):
    return leaf
  raise ValueError(f"{file}: parameter {name} is a {type(leaf).__name__}; expected an "
                   "inline array or a tensorstore spec.")


def _read_leaves(flat: dict, ckpt_dir: str, dtype: str, file: str) -> dict:
  """Reads every tensorstore leaf (concurrently) and casts every leaf to `dtype`."""
  import tensorstore as ts  # pylint: disable=import-outside-toplevel
  np_dtype = validation.check_dtype(dtype)
  opened = {}
  for name, leaf in flat.items():
    if _is_ts_spec(leaf):
      spec = {"driver": "cast", "dtype": dtype, "base": absolute_spec(leaf, ckpt_dir)}
      opened[name] = ts.open(spec, open=True, read=True)
  reads = {}
  for name, future in opened.items():
    try:
      reads[name] = future.result().read()
    except ValueError as e:
      raise ValueError(f"{file}: cannot open the tensorstore array of {name} "
                       f"({flat[name]['kvstore'].get('path')} under {ckpt_dir}): {e}") from e
  out = {}
  for name, leaf in flat.items():
    if name in reads:
      try:
        out[name] = np.asarray(reads[name].result())
      except ValueError as e:
        raise ValueError(f"{file}: cannot read the tensorstore array of {name}: {e}") from e
    else:
      out[name] = np.asarray(leaf).astype(np_dtype)
  return out


def load_legacy(file: str, config: Optional[T5Config] = None,
                dtype: str = "float32") -> tuple[T5Config, dict]:
  """Loads the params of a legacy T5X checkpoint.

  Shapes are checked against the config (given or derived) before any
  tensorstore array is read.

  Args:
    file: the msgpack `checkpoint` file (local or gs://); tensorstore paths
      are relative to its directory.
    config: if given, the params must fit it; otherwise it is derived.
    dtype: "float32" or "bfloat16" for the returned arrays.

  Returns:
    (config, params): params a nested dict of numpy arrays with T5X names.
  """
  from flax import serialization  # pylint: disable=import-outside-toplevel
  validation.check_dtype(dtype)
  try:
    contents = serialization.msgpack_restore(epath.Path(file).read_bytes())
  except Exception as e:  # msgpack raises several unrelated types on garbage
    if isinstance(e, (FileNotFoundError, PermissionError)):
      raise
    raise ValueError(f"{file}: cannot decode as a msgpack T5X checkpoint: {e}") from e
  flat = export.rename_reference_prompt(
      tree.flatten(_target(contents, file), is_leaf=_is_ts_spec), file)
  abstract = tree.unflatten({k: _abstract_leaf(v, k, file) for k, v in flat.items()})
  config = validation.resolve_config(abstract, file, config)
  ckpt_dir = os.fspath(epath.Path(file).parent)
  return config, tree.unflatten(_read_leaves(flat, ckpt_dir, dtype, file))


# ------------------------------------------------------------------------- orbax


def _params_key(stored: dict, directory: str) -> str:
  """Which top-level entry of an Orbax tree holds the params."""
  for key in ("target", "params"):
    if key in stored and isinstance(stored[key], dict):
      return key
  if "token_embedder" in stored:
    return ""
  raise ValueError(f"{directory}: no params in the Orbax checkpoint; expected a "
                   f"'target' (T5X) or 'params' subtree, found {sorted(stored)}.")


def load_orbax(directory: str, config: Optional[T5Config] = None,
               dtype: str = "float32") -> tuple[T5Config, dict]:
  """Loads the params of an Orbax PyTree checkpoint (T5X's `checkpoint_<N>/state`).

  Only the params subtree is restored; shapes are checked first, from the
  checkpoint's metadata.

  Args:
    directory: the PyTree directory (holds `_METADATA`).
    config: if given, the params must fit it; otherwise it is derived.
    dtype: "float32" or "bfloat16" for the returned arrays.

  Returns:
    (config, params): params a nested dict of numpy arrays with T5X names.
  """
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  np_dtype = validation.check_dtype(dtype)
  path = epath.Path(directory)
  stored = dict(ocp.PyTreeCheckpointHandler().metadata(path).tree)
  key = _params_key(stored, directory)
  metadata = stored[key] if key else stored
  renamed = tree.unflatten(export.rename_reference_prompt(tree.flatten(metadata), directory))
  config = validation.resolve_config(renamed, directory, config)

  item = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, np_dtype), metadata)
  restore_args = jax.tree_util.tree_map(
      lambda m: ocp.RestoreArgs(restore_type=np.ndarray, dtype=np_dtype), metadata)
  if key:
    item, restore_args = {key: item}, {key: restore_args}
  with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as checkpointer:
    restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True))
  params = restored[key] if key else restored
  params = tree.unflatten(export.rename_reference_prompt(tree.flatten(params), directory))
  return config, validation.cast(params, dtype)
