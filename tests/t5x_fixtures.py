"""Test helpers that WRITE T5X checkpoints, in the exact layouts T5X itself writes.

The library only reads these formats, so the writers live here. They follow
T5X's `checkpoints.py`:

* legacy `Checkpointer.save`: `<model_dir>/checkpoint_<step>/checkpoint` is
  `flax.serialization.to_bytes({"version": 3, "optimizer": state_dict})` with
  `state_dict = {"target": params, "state": {"step", "param_states"}}`; a
  leaf written to tensorstore is replaced by its zarr spec JSON, whose kvstore
  path is the leaf's "/"-path with dots (`target.encoder.layers_0...kernel`),
  relative to the step dir; other leaves stay inline in the msgpack.
* `OrbaxCheckpointManagerInterface.save`: an Orbax `CheckpointManager` with
  step prefix `checkpoint` and one `PyTreeCheckpointHandler(use_ocdbt=True)`
  item named `state` holding the same state dict.

Also the small shared pieces the checkpoint tests need: random params with
non-trivial norm scales, and jitted logits.
"""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning import tree
from prompt_tuning.checkpoints import validation
from prompt_tuning.models import T5Config, Transformer

T5X_VERSION = 3


def random_params(config: T5Config, seed: int = 0) -> dict:
  """Random float32 numpy params with the model's names and shapes.

  Drawn with numpy (no jit, so tests stay fast): kernels N(0, 1/fan_in),
  embedding N(0, 1), relative biases N(0, 0.5), and norm scales U[0.5, 1.5]
  rather than the init's ones, which would hide a swapped norm.
  """
  rng = np.random.default_rng(seed)
  flat = {}
  for path, shape in sorted(validation.expected_shapes(config).items()):
    if path.endswith("/scale"):
      value = rng.uniform(0.5, 1.5, shape)
    elif path.endswith("/kernel"):
      value = rng.normal(0.0, shape[0] ** -0.5, shape)
    elif path.endswith("rel_embedding"):
      value = rng.normal(0.0, 0.5, shape)
    else:
      value = rng.normal(0.0, 1.0, shape)
    flat[path] = value.astype(np.float32)
  return tree.unflatten(flat)


@functools.lru_cache(maxsize=None)
def _apply(config: T5Config):
  return jax.jit(Transformer(config).apply)


def logits(config: T5Config, params: dict, encoder_tokens, decoder_inputs, targets):
  """[B, L], [B, T], [B, T] int -> [B, T, V] float32 numpy logits (dropout off)."""
  out = _apply(config)({"params": params}, jnp.asarray(encoder_tokens),
                       jnp.asarray(decoder_inputs), jnp.asarray(targets))
  return np.asarray(out)


def padded_batch():
  """Two examples of different lengths, padded with 0, EOS = 1.

  Returns:
    [2, 7] encoder ids, [2, 4] decoder inputs (targets shifted right, start 0),
    [2, 4] targets.
  """
  encoder = np.array([[5, 6, 7, 8, 9, 1, 0], [10, 11, 1, 0, 0, 0, 0]], np.int32)
  targets = np.array([[3, 4, 5, 1], [6, 1, 0, 0]], np.int32)
  decoder = np.concatenate([np.zeros((2, 1), np.int32), targets[:, :-1]], axis=1)
  return encoder, decoder, targets


def adafactor_state(params: dict, step: int) -> dict:
  """A T5X Adafactor-like `state`: factored v_row/v_col for 2-D params, v for 1-D."""
  param_states = {}
  for path, value in tree.flatten(params).items():
    if np.ndim(value) == 2:
      state = {"v_row": np.full(value.shape[0], 0.5, np.float32),
               "v_col": np.full(value.shape[1], 0.25, np.float32),
               "v": np.zeros((1,), np.float32), "m": np.zeros((1,), np.float32)}
    else:
      state = {"v": np.full(value.shape, 0.5, np.float32),
               "v_row": np.zeros((1,), np.float32), "v_col": np.zeros((1,), np.float32),
               "m": np.zeros((1,), np.float32)}
    param_states[path] = state
  return {"step": np.int32(step), "param_states": tree.unflatten(param_states)}


def _zarr_spec(name: str, shape, dtype: str) -> dict:
  """The relative spec T5X's `_get_spec` builds for a local checkpoint."""
  chunks = [max(1, d // 2) for d in shape]  # several chunks per array, as for big ones
  return {"driver": "zarr", "dtype": dtype,
          "kvstore": {"driver": "file", "path": name.replace("/", ".")},
          "metadata": {"compressor": {"id": "gzip"}, "shape": list(shape),
                       "chunks": np.array(chunks)}}


def _default_in_tensorstore(name: str, value) -> bool:
  return np.ndim(value) >= 2 or name.endswith("/v_row")


def write_legacy_checkpoint(model_dir: str, step: int, params: dict,
                            in_tensorstore=_default_in_tensorstore,
                            save_dtype: str = "float32") -> str:
  """Writes a T5X legacy checkpoint of `params` (plus optimizer state).

  Args:
    model_dir: created if needed; the step dir goes inside.
    step: the step number (`checkpoint_<step>`).
    params: nested float32 params with T5X names.
    in_tensorstore: (name, value) -> whether the leaf goes to a zarr array
      (else inline). `name` is the full "/"-path, e.g. "target/encoder/...".
      Default: every leaf of rank >= 2 (kernels, embeddings, relative
      biases) and the optimizer's v_row are zarr; norm scales, v_col, v, m
      and the step are inline.
    save_dtype: dtype of the saved `target` leaves (T5X's `save_dtype`).

  Returns:
    The step directory.
  """
  import tensorstore as ts
  from flax import serialization

  step_dir = os.path.join(model_dir, f"checkpoint_{step}")
  os.makedirs(step_dir)
  state_dict = {"target": params, "state": adafactor_state(params, step)}
  written = {}
  for name, value in tree.flatten(state_dict).items():
    value = np.asarray(value)
    if name.startswith("target/"):
      value = value.astype(jnp.dtype(save_dtype))
    if in_tensorstore(name, value):
      spec = ts.Spec(_zarr_spec(name, value.shape, str(value.dtype))).to_json()
      absolute = dict(spec, kvstore={"driver": "file",
                                     "path": os.path.join(step_dir, spec["kvstore"]["path"])})
      store = ts.open(absolute, create=True, open=True).result()
      store.write(value).result()
      written[name] = spec  # relative path, as T5X keeps it
    else:
      written[name] = value
  contents = {"version": T5X_VERSION, "optimizer": tree.unflatten(written)}
  # T5X calls `to_bytes` on a tree holding `ts.Spec` objects, which flax turns
  # into their JSON (lists stay lists). Our tree already is that state dict, so
  # serialize it directly: `to_bytes` would turn the JSON's lists into dicts.
  with open(os.path.join(step_dir, "checkpoint"), "wb") as f:
    f.write(serialization.msgpack_serialize(contents))
  return step_dir


def write_orbax_checkpoint(model_dir: str, step: int, params: dict) -> str:
  """Writes `{"target": params, "state": ...}` as T5X's Orbax manager does.

  Returns:
    The step directory (`model_dir/checkpoint_<step>`, holding `state/`).
  """
  import orbax.checkpoint as ocp

  options = ocp.CheckpointManagerOptions(step_prefix="checkpoint")
  handlers = {"state": ocp.PyTreeCheckpointHandler(use_ocdbt=True)}
  state_dict = {"target": params, "state": adafactor_state(params, step)}
  with ocp.CheckpointManager(model_dir, item_handlers=handlers, options=options) as manager:
    manager.save(step, args=ocp.args.Composite(state=ocp.args.PyTreeSave(state_dict)))
    manager.wait_until_finished()
  return os.path.join(model_dir, f"checkpoint_{step}")
