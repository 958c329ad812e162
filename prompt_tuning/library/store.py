"""A prompt library on disk: trained prompts with where they came from (SPoT's sources).

    LIBRARY/
      <name>/                        one entry (default name: its task)
        encoder.prompt.prompt.npy    the prompt [P, D], as its run wrote it
        decoder.prompt.prompt.npy    (if the run trained one)
        entry.json                   task, frozen model, prompt length, score, source run

A library is also a prompt bank: `checkpoints.bank.load_bank(LIBRARY)` reads each
entry's prompt files (entry.json is not one), so `prompt-tuning infer` serves every
task of a library from one frozen model, a line's "task" naming its entry.

An entry is written into a hidden `.<name>.tmp-<pid>` directory and renamed into
place (hidden names are not bank entries), so a reader sees the whole entry or
none; an existing entry is replaced only with `overwrite=True`, and adding a task
never touches the other entries' files (the continual-learning guarantee).
"""
import dataclasses
import difflib
import json
import os
import shutil
from typing import Optional

import numpy as np

from prompt_tuning.checkpoints import run_dir
from prompt_tuning.prompts import export, initializers
from prompt_tuning.prompts.spec import PROMPT_PATH, PROMPT_PATHS

ENTRY_JSON = "entry.json"
# The T5Config fields that make two frozen models interchangeable (not dtype, dropout,
# remat or layer scanning, which change how a model runs, not what it computes).
_ARCHITECTURE = ("vocab_size", "emb_dim", "num_heads", "num_encoder_layers",
                 "num_decoder_layers", "head_dim", "mlp_dim", "mlp_activations",
                 "logits_via_embedding", "relative_attention_num_buckets",
                 "relative_attention_max_distance")


@dataclasses.dataclass(frozen=True)
class Entry:
  """One library entry, as its entry.json records it.

  Attributes:
    name: the entry's directory name (the prompt's name in a bank).
    directory: where its files are.
    task: the source task (MIXTURE_OR_TASK_NAME of the run).
    model: the frozen model: {"initial_checkpoint_path", "d_model", "vocab_size",
      "config": the architecture fields of its T5Config}.
    prompt_length: P.
    metric, value, step: the run's best evaluation (None if it never evaluated).
    source: the run's MODEL_DIR.
  """
  name: str
  directory: str
  task: str
  model: dict
  prompt_length: int
  metric: Optional[str]
  value: Optional[float]
  step: Optional[int]
  source: str

  @property
  def prompt_file(self) -> str:
    """The [P, D] encoder prompt's `.npy`."""
    return os.path.join(self.directory, export.npy_name(PROMPT_PATH))

  def prompt(self) -> np.ndarray:
    """[P, D] float32 encoder prompt."""
    return export.read_npy(self.prompt_file).astype(np.float32)

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    del out["directory"], out["name"]
    return out


def normalise_checkpoint_path(path: str) -> str:
  """A local INITIAL_CHECKPOINT_PATH made absolute (remote paths kept as they are)."""
  return path if "://" in path else os.path.abspath(path)


def model_fingerprint(initial_checkpoint_path: str, model_config: dict) -> dict:
  """What identifies a frozen model: its path and its architecture (T5Config fields)."""
  missing = [k for k in _ARCHITECTURE if k not in model_config]
  if missing:
    raise ValueError(f"model config lacks {missing}; expected a T5Config as a dict.")
  return {"initial_checkpoint_path": normalise_checkpoint_path(initial_checkpoint_path),
          "d_model": int(model_config["emb_dim"]),
          "vocab_size": int(model_config["vocab_size"]),
          "config": _plain({k: model_config[k] for k in _ARCHITECTURE})}


def _plain(value):
  """As JSON reads it back (tuples become lists), so a record compares with a config."""
  return json.loads(json.dumps(value))


def _read_entry(directory: str) -> Entry:
  path = os.path.join(directory, ENTRY_JSON)
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
  except FileNotFoundError:
    raise ValueError(f"{directory}: no {ENTRY_JSON}; expected a prompt library entry "
                     "(written by `prompt-tuning library add`).") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e}).") from e
  fields = {f.name for f in dataclasses.fields(Entry)} - {"name", "directory"}
  missing = sorted(fields - set(record))
  if missing:
    raise ValueError(f"{path}: missing {missing}; expected the fields {sorted(fields)}.")
  return Entry(name=os.path.basename(os.path.normpath(directory)), directory=directory,
               **{k: record[k] for k in fields})


def _check_unique_tasks(found: list[Entry], library_dir: str) -> None:
  by_task: dict = {}
  for entry in found:
    by_task.setdefault(entry.task, []).append(entry.name)
  twice = {task: names for task, names in by_task.items() if len(names) > 1}
  if twice:
    raise ValueError(f"{library_dir}: tasks with more than one entry: {twice}; expected one "
                     "entry per task (remove or rename one).")


def entries(library_dir: str) -> list[Entry]:
  """Every entry of a library, by name.

  Raises:
    ValueError: no such library, an entry without a readable entry.json, or two
      entries for one task.
  """
  if not os.path.isdir(library_dir):
    raise ValueError(f"LIBRARY={library_dir!r}: no such directory; expected a prompt "
                     "library (create one with `prompt-tuning library add`).")
  names = sorted(n for n in os.listdir(library_dir)
                 if not n.startswith(".") and os.path.isdir(os.path.join(library_dir, n)))
  found = [_read_entry(os.path.join(library_dir, n)) for n in names]
  _check_unique_tasks(found, library_dir)
  return found


def get(library_dir: str, name: str) -> Entry:
  """The entry `name`; an unknown name is an error listing close matches and all names."""
  found = {e.name: e for e in entries(library_dir)}
  if name not in found:
    close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"no entry {name!r} in the prompt library {library_dir}; it holds "
                     f"{sorted(found)}.{hint}")
  return found[name]


def check_model(entry: Entry, initial_checkpoint_path: Optional[str] = None,
                d_model: Optional[int] = None, vocab_size: Optional[int] = None,
                model_config: Optional[dict] = None) -> None:
  """Refuses an entry tuned on another frozen model than the one given.

  Each given argument is compared with the entry's record; `model_config` (a
  T5Config as a dict) compares the whole architecture.

  Raises:
    ValueError: naming the entry, what was expected and what was found.
  """
  model = entry.model
  found = []
  if initial_checkpoint_path is not None:
    want = normalise_checkpoint_path(initial_checkpoint_path)
    if want != model["initial_checkpoint_path"]:
      found.append(f"INITIAL_CHECKPOINT_PATH: expected {want!r}, the entry's is "
                   f"{model['initial_checkpoint_path']!r}")
  for field, want in (("d_model", d_model), ("vocab_size", vocab_size)):
    if want is not None and int(want) != int(model[field]):
      found.append(f"{field}: expected {int(want)}, the entry's is {model[field]}")
  if model_config is not None:
    theirs, model_config = model["config"], _plain(dict(model_config))
    found += [f"{k}: expected {model_config.get(k)!r}, the entry's is {theirs.get(k)!r}"
              for k in _ARCHITECTURE if model_config.get(k) != theirs.get(k)]
  if found:
    raise ValueError(f"prompt library entry {entry.name!r} ({entry.directory}) was tuned on "
                     "another frozen model: " + "; ".join(found) + ".")


def check_can_add(library_dir: str, name: str, initial_checkpoint_path: str,
                  overwrite: bool = False) -> None:
  """Refuses, before anything is trained or written, an entry `add` would refuse.

  Raises:
    ValueError: a name that is no plain directory name, an existing entry
      (without `overwrite`), or a library of another frozen model.
  """
  if not name or name.startswith(".") or os.sep in name or name != name.strip():
    raise ValueError(f"entry name {name!r}; expected a plain directory name.")
  target = os.path.join(library_dir, name)
  if os.path.exists(target) and not overwrite:
    raise ValueError(f"{target} exists; expected a new entry name (or overwrite=True / "
                     "--overwrite to replace it).")
  if os.path.isdir(library_dir):
    others = [e for e in entries(library_dir) if e.name != name]
    if others:
      check_model(others[0], initial_checkpoint_path)


def add(library_dir: str, model_dir: str, name: Optional[str] = None,
        checkpoint="best", overwrite: bool = False) -> Entry:
  """Adds a prompt-tuning run's prompt to a library, atomically.

  Reads the run's saved prompt (`checkpoint`: "best", "latest" or a step), its
  best evaluation (best/best.json) and its frozen model and task (the latest
  checkpoint's metadata) from MODEL_DIR.

  Args:
    library_dir: the library (created if missing).
    model_dir: the run's MODEL_DIR.
    name: the entry's name (default: the run's task, which is what a line of
      `prompt-tuning infer` names with "task").
    checkpoint: which of the run's prompts.
    overwrite: replace an existing entry of that name.

  Returns:
    The new entry.

  Raises:
    ValueError: an existing entry (without `overwrite`), a run that trained more
      than one [P, D] encoder prompt (a bank, weights or adapters), another entry
      of the same task, or a library of another frozen model.
  """
  flat, where = run_dir.read_trainable(model_dir, checkpoint)
  extra = sorted(set(flat) - set(PROMPT_PATHS))
  if extra or PROMPT_PATH not in flat or np.ndim(flat[PROMPT_PATH]) != 2:
    raise ValueError(f"{where}: expected one [P, d_model] encoder prompt ({PROMPT_PATH}) and "
                     f"nothing else; found {[(k, np.shape(v)) for k, v in sorted(flat.items())]}"
                     " (a bank, a model-tuning or adapter run is not a library entry).")
  meta = run_dir.read_meta(model_dir)
  task = (meta.get("data") or {}).get("mixture_or_task_name")
  if not task or not meta.get("initial_checkpoint_path") or not meta.get("model_config"):
    raise ValueError(f"{model_dir}: its checkpoint metadata lacks the task, the "
                     "INITIAL_CHECKPOINT_PATH or the model config; expected a run written by "
                     "prompt-tuning train.")
  name = name or task
  check_can_add(library_dir, name, meta["initial_checkpoint_path"], overwrite)
  best = run_dir.load_best(model_dir) if checkpoint == "best" else None
  os.makedirs(library_dir, exist_ok=True)
  target = os.path.join(library_dir, name)
  entry = Entry(name=name, directory=target, task=task,
                model=model_fingerprint(meta["initial_checkpoint_path"], meta["model_config"]),
                prompt_length=int(np.shape(flat[PROMPT_PATH])[0]),
                metric=best and best.get("metric"), value=best and best.get("value"),
                step=best.get("step") if best else None,
                source=os.path.abspath(model_dir))
  others = [e for e in entries(library_dir) if e.name != name]
  _check_unique_tasks(others + [entry], library_dir)
  if others:
    check_model(others[0], model_config=entry.model["config"])
  tmp = os.path.join(library_dir, f".{name}.tmp-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  for path, value in flat.items():
    np.save(os.path.join(tmp, export.npy_name(path)), np.asarray(value))
  with open(os.path.join(tmp, ENTRY_JSON), "w", encoding="utf-8") as f:
    json.dump(entry.to_json(), f, indent=1, sort_keys=True)
  if os.path.exists(target):  # overwrite: the old entry goes only once the new one is whole
    old = os.path.join(library_dir, f".{name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old)
  else:
    os.replace(tmp, target)
  return entry


def from_library(library_dir: str, name: str,
                 initial_checkpoint_path: Optional[str] = None) -> initializers.PromptInit:
  """PROMPT_INIT from a library entry by name (SPoT's transfer: a source task's prompt).

  Refuses, when the prompt is made, an entry tuned on another frozen model: one
  of another width or vocabulary size (read off the run's embedding table) or,
  when `initial_checkpoint_path` is given (configs/prompts/from_library.gin
  passes INITIAL_CHECKPOINT_PATH), of another checkpoint. The entry's prompt
  length must equal PROMPT_LENGTH.
  """
  entry = get(library_dir, name)
  read = initializers.from_file(entry.prompt_file)

  def init(rng, shape, embedding=None):
    vocab_size = None if embedding is None else int(np.shape(embedding)[0])
    check_model(entry, initial_checkpoint_path, d_model=int(shape[1]), vocab_size=vocab_size)
    if int(shape[0]) != entry.prompt_length:
      raise ValueError(f"prompt library entry {name!r}: prompt length {entry.prompt_length}; "
                       f"expected PROMPT_LENGTH={int(shape[0])}.")
    return read(rng, shape, embedding)
  return init
