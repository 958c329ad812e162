"""Run checkpoints: only what changes, atomically, with a keep policy.

Layout under MODEL_DIR:
  checkpoint_<step>/state/       orbax: trainable params, optimizer state, step, rng
  checkpoint_<step>/meta/        JSON: data position, the run's gin config, the
                                 frozen model's path (referenced, never copied)
  numpy_checkpoints/checkpoint_<step>/<path>.npy   every trainable param, e.g.
                                 encoder.prompt.prompt.npy ([P, D] float32) and,
                                 with a decoder prompt, decoder.prompt.prompt.npy
  best/<path>.npy + best/best.json                 the best eval's prompt(s)

Orbax writes each step into a temporary directory and renames it when complete,
so a kill during a save leaves the previous checkpoint usable (the partial one
is ignored and cleaned up). `keep` bounds the orbax checkpoints; the small
`.npy` exports are all kept, as the reference keeps them.
"""
import json
import os
import shutil
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from prompt_tuning.train import partition

_BEST = "best"
_NUMPY = "numpy_checkpoints"


def _key_name(entry) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  raise TypeError(f"unexpected pytree path entry {entry!r}")


def flatten_state(tree: Any) -> dict[str, np.ndarray]:
  """Any pytree -> {"a/b/0/c": host array}; stable, readable names for orbax."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(_key_name(e) for e in path): np.asarray(leaf) for path, leaf in leaves}


def _check_fits(shapes: dict, template: Any, where: str):
  """Raises ValueError listing missing/unexpected names and shape mismatches."""
  want = {k: np.shape(v) for k, v in flatten_state(template).items()}
  missing = sorted(set(want) - set(shapes))
  unexpected = sorted(set(shapes) - set(want))
  mismatched = [f"{k}: {tuple(shapes[k])}, expected {want[k]}"
                for k in want if k in shapes and tuple(shapes[k]) != want[k]]
  if missing or unexpected or mismatched:
    raise ValueError(
        f"{where} does not fit this run's train state (written with another "
        f"PROMPT_LENGTH, TRAINABLE_REGEX or optimizer?). Missing: {missing}; "
        f"unexpected: {unexpected}; shape mismatches: {mismatched}.")


def unflatten_state(flat: dict, template: Any, where: str) -> Any:
  """Fills `template`'s structure (and dtypes) from `flat`, checking names and shapes."""
  _check_fits({k: np.shape(v) for k, v in flat.items()}, template, where)
  names = list(flatten_state(template))
  leaves = [np.asarray(flat[k]).astype(np.asarray(t).dtype)
            for k, t in zip(names, jax.tree_util.tree_leaves(template))]
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def _write_npy_dir(directory: str, trainable: Any, extra_json: Optional[dict] = None):
  """Writes every trainable param as .npy into `directory`, atomically."""
  tmp = directory + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  for path, value in partition.flatten(trainable).items():
    np.save(os.path.join(tmp, partition.npy_name(path)), np.asarray(value))
  if extra_json is not None:
    with open(os.path.join(tmp, "best.json"), "w") as f:
      json.dump(extra_json, f, indent=1, sort_keys=True)
  old = directory + ".old"
  if os.path.exists(directory):
    os.replace(directory, old)
  os.replace(tmp, directory)
  shutil.rmtree(old, ignore_errors=True)


class Checkpointer:
  """Saves and restores a run's `TrainState` + metadata in MODEL_DIR."""

  def __init__(self, model_dir: str, keep: Optional[int] = 3):
    if keep is not None and keep < 1:
      raise ValueError(f"keep={keep}; expected None (keep all) or >= 1.")
    self.model_dir = model_dir
    # Finish an interrupted best-prompt swap (see _write_npy_dir).
    best, old = os.path.join(model_dir, _BEST), os.path.join(model_dir, _BEST + ".old")
    if not os.path.exists(best) and os.path.exists(old):
      os.replace(old, best)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, step_prefix="checkpoint", create=True,
        enable_async_checkpointing=False, cleanup_tmp_directories=True)
    # Handlers named up front, so a fresh process (a resumed run) can read the
    # metadata of checkpoints it did not write.
    self._manager = ocp.CheckpointManager(
        os.path.abspath(model_dir), options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> str:
    """Writes checkpoint_<step> (orbax) and its .npy export; returns the npy dir."""
    flat = flatten_state(state)
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()
    npy_dir = os.path.join(self.model_dir, _NUMPY, f"checkpoint_{step}")
    _write_npy_dir(npy_dir, state.trainable)
    return npy_dir

  def restore(self, template: Any, step: Optional[int] = None) -> tuple[Any, dict]:
    """Restores `step` (default latest) into `template`'s structure."""
    step = self.latest_step() if step is None else step
    where = os.path.join(self.model_dir, f"checkpoint_{step}")
    abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype)
                for k, v in flatten_state(template).items()}
    meta = self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta
    stored = self._manager.item_metadata(step).state
    _check_fits({k: v.shape for k, v in stored.items()}, template, where)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract))).state
    return unflatten_state(dict(restored), template, where), meta

  def save_best(self, trainable: Any, record: dict) -> str:
    """Keeps `trainable` as the best prompt (.npy) with `record` in best.json."""
    directory = os.path.join(self.model_dir, _BEST)
    _write_npy_dir(directory, trainable, record)
    return directory

  def load_best(self) -> Optional[dict]:
    path = os.path.join(self.model_dir, _BEST, "best.json")
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  def close(self):
    self._manager.close()
