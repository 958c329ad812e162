"""A run's MODEL_DIR: its layout, written and read back in this one module.

    MODEL_DIR/
      config.gin, operative_config.gin   what the run asked for / what it used
      checkpoint_<step>/state/           orbax: trainable params, optimizer state,
                                         step, rng (only what changes)
      checkpoint_<step>/meta/            JSON: data fingerprint and position, the
                                         frozen model's path (referenced, never
                                         copied), the gin config
      numpy_checkpoints/checkpoint_<step>/<path>.npy   every trainable param
                                         (encoder.prompt.prompt.npy, [P, D] or a
                                         [K, P, D] bank; decoder.prompt.prompt.npy)
      best/<path>.npy + best/best.json   the best evaluation's prompt(s)
      metrics.jsonl                      one JSON record per log / eval
      train/, eval/                      TensorBoard events
      .lock                              held by the run training in it (`lock`)

Orbax writes each step into a temporary directory and renames it when
complete, so a kill during a save leaves the previous checkpoint usable; the
`.npy` directories are swapped in atomically the same way. `keep` bounds the
orbax checkpoints; the small `.npy` exports are all kept, as the reference
keeps them. The layout is google-research/prompt-tuning's (numpy_checkpoints)
plus T5X's (checkpoint_<step>), so run directories from before the prompt bank
read unchanged.
"""
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from typing import Any, Iterator, Optional, Union

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from prompt_tuning import sharding
from prompt_tuning.prompts import export

CHECKPOINT_PREFIX = "checkpoint"
NUMPY_DIR = "numpy_checkpoints"
BEST_DIR = "best"
BEST_JSON = "best.json"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.gin"
OPERATIVE_CONFIG_FILE = "operative_config.gin"
EVAL_DIR = "eval"
LOCK_FILE = ".lock"
_STEP_DIR = re.compile(rf"{CHECKPOINT_PREFIX}_(\d+)")
# Orbax's name for a step it had not finished writing: checkpoint_<N>.orbax-checkpoint-tmp-*.
_ORBAX_TMP = re.compile(rf"{CHECKPOINT_PREFIX}_\d+\.orbax-checkpoint-tmp.*")


def numpy_dir(model_dir: str, step: int) -> str:
  return os.path.join(model_dir, NUMPY_DIR, f"{CHECKPOINT_PREFIX}_{int(step)}")


def best_dir(model_dir: str) -> str:
  return os.path.join(model_dir, BEST_DIR)


def numpy_steps(model_dir: str) -> list[int]:
  """Steps with a `.npy` export, ascending."""
  root = os.path.join(model_dir, NUMPY_DIR)
  if not os.path.isdir(root):
    return []
  return sorted(int(m.group(1)) for m in map(_STEP_DIR.fullmatch, os.listdir(root)) if m)


# ------------------------------------------------------------ orbax train state


def _key_name(entry) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  raise TypeError(f"unexpected pytree path entry {entry!r}")


def _named_leaves(state: Any) -> dict[str, Any]:
  """Any pytree -> {"a/b/0/c": leaf}, the leaves as they are (arrays stay on device)."""
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return {"/".join(_key_name(e) for e in path): leaf for path, leaf in leaves}


def flatten_state(state: Any) -> dict[str, np.ndarray]:
  """Any pytree -> {"a/b/0/c": host array}; stable, readable names for orbax."""
  return {k: np.asarray(v) for k, v in _named_leaves(state).items()}


class StateMismatchError(ValueError):
  """A checkpoint that reads but was written by another kind of run."""


def _check_fits(shapes: dict, template: Any, where: str):
  """Raises StateMismatchError listing missing/unexpected names and shape mismatches."""
  want = {k: np.shape(v) for k, v in _named_leaves(template).items()}
  missing = sorted(set(want) - set(shapes))
  unexpected = sorted(set(shapes) - set(want))
  mismatched = [f"{k}: {tuple(shapes[k])}, expected {want[k]}"
                for k in want if k in shapes and tuple(shapes[k]) != want[k]]
  if missing or unexpected or mismatched:
    raise StateMismatchError(
        f"{where} does not fit this run's train state (written with another "
        f"PROMPT_LENGTH, TRAINABLE_REGEX or optimizer?). Missing: {missing}; "
        f"unexpected: {unexpected}; shape mismatches: {mismatched}.")


def _like(value: Any, template: Any) -> Any:
  """`value` with `template`'s dtype: a jax.Array on its sharding, else host numpy."""
  if isinstance(template, jax.Array):
    if isinstance(value, jax.Array) and value.sharding == template.sharding:
      return value.astype(template.dtype) if value.dtype != template.dtype else value
    return jax.device_put(np.asarray(value).astype(template.dtype), template.sharding)
  return np.asarray(value).astype(np.asarray(template).dtype)


def unflatten_state(flat: dict, template: Any, where: str) -> Any:
  """Fills `template`'s structure (and dtypes) from `flat`, checking names and shapes.

  Leaves whose template is a `jax.Array` keep that array's sharding (a state
  restored onto another mesh lands on the new one); the others are numpy.
  """
  _check_fits({k: np.shape(v) for k, v in flat.items()}, template, where)
  names = list(_named_leaves(template))
  leaves = [_like(flat[k], t) for k, t in zip(names, jax.tree_util.tree_leaves(template))]
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def _remove_unfinished_steps(model_dir: str) -> None:
  """Deletes steps orbax had not finished writing (a kill during a save).

  Done here, synchronously, rather than by orbax's background thread: that
  thread can run while `tfds.testing.mock_data` has swapped the file system
  out (seen in the notebook's smoke run), and then fails on a path it cannot see.
  """
  if os.path.isdir(model_dir):
    for name in os.listdir(model_dir):
      if _ORBAX_TMP.fullmatch(name):
        shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)


class Checkpointer:
  """Saves and restores a run's `TrainState` + metadata in MODEL_DIR.

  Sharded states save and restore sharded (orbax writes each process's parts);
  `restore` places the state on its template's shardings, so a checkpoint
  written on one mesh restores onto another. In a multi-host run every process
  makes the same calls; process 0 alone writes the `.npy` exports and cleans up.
  """

  def __init__(self, model_dir: str, keep: Optional[int] = 3, read_only: bool = False):
    """Opens MODEL_DIR's checkpoints.

    Args:
      model_dir: MODEL_DIR (created unless `read_only`).
      keep: orbax checkpoints kept (None keeps all).
      read_only: only read (e.g. while a run writes): nothing is created, recovered
        or cleaned up.
    """
    if keep is not None and keep < 1:
      raise ValueError(f"keep={keep}; expected None (keep all) or >= 1.")
    self.model_dir = model_dir
    if read_only and not os.path.isdir(model_dir):
      raise ValueError(f"{model_dir}: no such directory; expected a prompt-tuning MODEL_DIR.")
    if not read_only and sharding.is_primary():
      export.recover_npy_dir(best_dir(model_dir))  # finish an interrupted best swap
      _remove_unfinished_steps(model_dir)
    if not read_only and jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"prompt_tuning: {model_dir} cleaned up")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, step_prefix=CHECKPOINT_PREFIX, create=not read_only,
        enable_async_checkpointing=False, cleanup_tmp_directories=False,
        read_only=read_only)
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
    flat = {k: v if isinstance(v, jax.Array) else np.asarray(v)
            for k, v in _named_leaves(state).items()}
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()
    return self._write_npy(numpy_dir(self.model_dir, step), state.trainable)

  def _write_npy(self, directory: str, trainable: Any, record: Optional[dict] = None) -> str:
    values = sharding.host_arrays(trainable)  # every process: a collective if split
    if sharding.is_primary():
      export.write_npy_dir(directory, values, record, BEST_JSON)
    return directory

  def restore(self, template: Any, step: Optional[int] = None) -> tuple[Any, dict]:
    """Restores `step` (default latest) into `template`'s structure; returns (state, meta)."""
    step = self.latest_step() if step is None else step
    where = os.path.join(self.model_dir, f"{CHECKPOINT_PREFIX}_{step}")
    abstract = {k: jax.ShapeDtypeStruct(np.shape(v), v.dtype,
                                        sharding=getattr(v, "sharding", None))
                for k, v in _named_leaves(template).items()}
    meta = self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta
    stored = self._manager.item_metadata(step).state
    _check_fits({k: v.shape for k, v in stored.items()}, template, where)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract))).state
    return unflatten_state(dict(restored), template, where), meta

  def restore_readable(self, template: Any) -> tuple[Any, dict, list[str]]:
    """Restores the newest checkpoint that reads, newest first.

    A checkpoint whose files are damaged (e.g. cut short by a full disk) is
    skipped with a warning naming it and the error, and moved aside to
    `checkpoint_<N>.unreadable` (kept for inspection, out of the way of the
    step's next save); the data position comes with the checkpoint that is
    used. A checkpoint that does not fit `template` (another PROMPT_LENGTH, ...)
    is not damage: that error is raised.

    Returns:
      (state, meta, [one line per skipped checkpoint]).

    Raises:
      ValueError: no checkpoint reads (each one's error is listed).
    """
    skipped, unreadable = [], []
    for step in sorted(self.all_steps(), reverse=True):
      where = os.path.join(self.model_dir, f"{CHECKPOINT_PREFIX}_{step}")
      try:
        state, meta = self.restore(template, step)
      except StateMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except  (tensorstore, orbax, json)
        skipped.append(f"{where}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
        unreadable.append(where)
      else:
        for line, bad in zip(skipped, unreadable):
          aside = f"{bad}.unreadable"
          shutil.rmtree(aside, ignore_errors=True)
          os.replace(bad, aside)
          logging.warning("unreadable checkpoint skipped (moved to %s), resuming from step %d "
                          "instead: %s", aside, step, line)
        if unreadable:
          self._manager.reload()
        return state, meta, skipped
    raise ValueError(f"{self.model_dir}: no checkpoint could be read:\n  " +
                     "\n  ".join(skipped))

  def read_meta(self, step: Optional[int] = None) -> dict:
    """The JSON metadata saved with `step` (default latest): data, frozen model, config."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"{self.model_dir}: no checkpoint_<step> to read metadata from.")
    return dict(self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta)

  def save_best(self, trainable: Any, record: dict) -> str:
    """Keeps `trainable` as the best prompt (.npy) with `record` in best.json."""
    return self._write_npy(best_dir(self.model_dir), trainable, record)

  def load_best(self) -> Optional[dict]:
    return load_best(self.model_dir)

  def close(self):
    self._manager.close()


def read_meta(model_dir: str) -> dict:
  """The latest checkpoint's metadata of a run (see `Checkpointer.save`)."""
  checkpointer = Checkpointer(model_dir, keep=None, read_only=True)
  try:
    return checkpointer.read_meta()
  finally:
    checkpointer.close()


def load_best(model_dir: str) -> Optional[dict]:
  """best/best.json ({"step", "metric", "value"}), or None before any evaluation."""
  path = os.path.join(best_dir(model_dir), BEST_JSON)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


# ----------------------------------------------------------------------- lock


@contextlib.contextmanager
def lock(model_dir: str) -> Iterator[str]:
  """Holds MODEL_DIR for one run: a second run on it refuses at once, naming the holder.

  An exclusive `flock` on MODEL_DIR/.lock, which the operating system releases
  when the holder exits or is killed, so a killed run never leaves it stuck.
  The file records who holds it (host, pid, start time) for the message.

  Raises:
    RuntimeError: another process holds MODEL_DIR.
  """
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, LOCK_FILE)
  handle = open(path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
  try:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      handle.seek(0)
      holder = handle.read().strip() or "another process"
      raise RuntimeError(f"MODEL_DIR={model_dir} is in use by {holder}; wait for that run to "
                         "end (or stop it), or use another MODEL_DIR.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n")
    handle.flush()
    yield path
  finally:
    handle.close()  # closing releases the lock


# ------------------------------------------------------------------- prompts


def read_trainable(model_dir: str, checkpoint: Union[str, int] = "best") -> tuple[dict, str]:
  """A run's saved trainable params, from their `.npy` exports.

  Args:
    model_dir: a run's MODEL_DIR.
    checkpoint: "best" (MODEL_DIR/best), "latest" (the newest
      numpy_checkpoints/checkpoint_<step>) or a step number.

  Returns:
    (flat {param path: array}, the directory read).
  """
  if not model_dir or not os.path.isdir(model_dir):
    raise ValueError(f"MODEL_DIR={model_dir!r} is not a directory; expected a prompt-tuning "
                     "run.")
  steps = numpy_steps(model_dir)
  if checkpoint == "best":
    where = best_dir(model_dir)
  elif checkpoint == "latest":
    if not steps:
      raise ValueError(f"{os.path.join(model_dir, NUMPY_DIR)}: no checkpoint_<step> prompts "
                       "to read.")
    where = numpy_dir(model_dir, steps[-1])
  else:
    try:
      where = numpy_dir(model_dir, int(checkpoint))
    except (TypeError, ValueError) as e:
      raise ValueError(f"EVAL_CHECKPOINT={checkpoint!r}; expected 'best', 'latest' or a "
                       "step number.") from e
  if not os.path.isdir(where):
    has_best = os.path.isdir(best_dir(model_dir))
    raise ValueError(f"EVAL_CHECKPOINT={checkpoint!r}: {where} does not exist; saved steps: "
                     f"{steps}{', and best/' if has_best else ''}.")
  return export.read_npy_dir(where), where


def is_run_dir(path: str) -> bool:
  """Whether `path` is a MODEL_DIR with saved prompts (best/ or numpy_checkpoints/)."""
  return os.path.isdir(best_dir(path)) or os.path.isdir(os.path.join(path, NUMPY_DIR))


def read_prompt_source(source: str, checkpoint: Union[str, int] = "best") -> tuple[dict, str]:
  """Prompts from wherever a user keeps them: a run (its `checkpoint`), or a prompt file.

  Args:
    source: a MODEL_DIR, a `.npy`, a directory of prompt files, or a PEFT
      prompt-tuning adapter directory (`export.read_prompt_file`).
    checkpoint: for a MODEL_DIR, "best", "latest" or a step.

  Returns:
    ({param path: array}, what was read).
  """
  if is_run_dir(source):
    return read_trainable(source, checkpoint)
  return export.read_prompt_file(source), source


# ------------------------------------------------------------- metrics.jsonl


def read_metrics(model_dir: str) -> list[dict]:
  """Every record of MODEL_DIR/metrics.jsonl, in order ([] without the file)."""
  path = os.path.join(model_dir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def trim_metrics(model_dir: str, last_step: int) -> list[dict]:
  """Drops records after `last_step` (a resumed run trains those steps again)."""
  records = [r for r in read_metrics(model_dir) if r["step"] <= last_step]
  path = os.path.join(model_dir, METRICS_FILE)
  if os.path.exists(path):
    with open(path + ".tmp", "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in records)
    os.replace(path + ".tmp", path)
  return records


def append_metrics(model_dir: str, record: dict) -> None:
  with open(os.path.join(model_dir, METRICS_FILE), "a") as f:
    f.write(json.dumps(record) + "\n")


# --------------------------------------------------------------- gin configs


def save_config(model_dir: str, config_str: str) -> str:
  """Saves the run's resolved gin config as MODEL_DIR/config.gin, before it runs.

  A failed run still says how it was made. Another run's different config.gin
  is never overwritten: this one then goes to config_<UTC time>.gin beside it.
  """
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == config_str:
        return path
    path = os.path.join(model_dir, time.strftime("config_%Y%m%d_%H%M%S.gin", time.gmtime()))
  with open(path, "w") as f:
    f.write(config_str)
  return path


def save_operative_config(model_dir: str, config_str: str) -> str:
  path = os.path.join(model_dir, OPERATIVE_CONFIG_FILE)
  with open(path, "w") as f:
    f.write(config_str)
  return path
