"""A prompt bank on disk: named prompts, loaded as one [K, P, D] bank for one model.

A bank is given as
  - a manifest, a JSON file {"name": "source", ...};
  - a directory whose entries are the prompts, each named by its file or
    directory name (`rte.npy` is "rte", `boolq/` is "boolq"; names starting with
    "." are skipped), such as a prompt library (`prompt_tuning.library`); or
  - a list of sources (names from their base names, or "name=source").
A source is anything `run_dir.read_prompt_source` reads: a run's MODEL_DIR (its
best prompt), a `.npy`, a directory of prompt files, a PEFT adapter. Relative
sources in a manifest are relative to the manifest's directory.

All prompts of a bank share one length and width (one array); either every
member has a decoder prompt (of one length) or none has.
"""
import dataclasses
import json
import os
from typing import Optional, Sequence, Union

import numpy as np

from prompt_tuning.checkpoints import run_dir
from prompt_tuning.prompts import export, peft, spec as spec_lib
from prompt_tuning.prompts.spec import DECODER_PROMPT_PATH, PROMPT_PATH, PROMPT_PATHS


@dataclasses.dataclass
class PromptBank:
  """K named prompts as arrays for `Transformer(..., encoder_prompt=K-bank spec)`.

  Attributes:
    names: K names; `prompt_ids` index this list.
    sources: where each was read.
    encoder: [K, P, D] encoder prompts, or None.
    decoder: [K, P_dec, D] decoder prompts, or None.
  """
  names: list
  sources: list
  encoder: Optional[np.ndarray]
  decoder: Optional[np.ndarray]

  def __len__(self) -> int:
    return len(self.names)

  def index(self, name: str) -> int:
    """The prompt id of `name`; a name not in the bank is an error listing the names."""
    try:
      return self.names.index(name)
    except ValueError:
      raise ValueError(f"no prompt named {name!r} in the bank; it holds {self.names}.") from None

  def specs(self, combine: str = "prefix"):
    """(encoder spec or None, decoder spec or None), with num_prompts = K."""
    enc = (spec_lib.encoder_prompt(self.encoder.shape[1], len(self), combine)
           if self.encoder is not None else None)
    dec = (spec_lib.decoder_prompt(self.decoder.shape[1], len(self))
           if self.decoder is not None else None)
    return enc, dec

  def params(self) -> dict:
    """{path: [K, P, D]} to merge with the frozen params ([P, D] when K = 1, as `specs`)."""
    out = {}
    for path, value in ((PROMPT_PATH, self.encoder), (DECODER_PROMPT_PATH, self.decoder)):
      if value is not None:
        out[path] = value[0] if len(self) == 1 else value
    return out


def _entries(source: Union[str, Sequence[str]]) -> list[tuple[str, str]]:
  """[(name, source)] of a manifest, a directory of prompts, or a list."""
  if isinstance(source, str) and source.endswith(".json") and os.path.isfile(source):
    try:
      with open(source, encoding="utf-8") as f:
        manifest = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{source}: not valid JSON ({e}); expected a prompt bank manifest "
                       '{"name": "path", ...}.') from e
    if not isinstance(manifest, dict) or not manifest or not all(
        isinstance(v, str) for v in manifest.values()):
      raise ValueError(f"{source}: expected a non-empty JSON object mapping prompt names to "
                       "paths.")
    root = os.path.dirname(os.path.abspath(source))
    return [(name, path if os.path.isabs(path) else os.path.join(root, path))
            for name, path in manifest.items()]
  if isinstance(source, str):
    if not os.path.isdir(source) or _is_one_prompt(source):
      return [(_name(source), source)]
    # Hidden names are not entries: a library writes an entry there before renaming it.
    entries = sorted(e for e in os.listdir(source) if not e.startswith("."))
    if not entries:
      raise ValueError(f"{source}: an empty directory; expected one prompt per entry.")
    return [(_name(e), os.path.join(source, e)) for e in entries]
  out = []
  for item in source:
    name, _, path = item.partition("=") if "=" in item else (_name(item), "", item)
    out.append((name, path))
  return out


def _is_one_prompt(directory: str) -> bool:
  """A run, a PEFT adapter or a directory of prompt files, rather than a bank directory."""
  if run_dir.is_run_dir(directory) or peft.is_adapter_dir(directory):
    return True
  return any(export.param_path(name) in PROMPT_PATHS for name in os.listdir(directory))


def _name(path: str) -> str:
  base = os.path.basename(os.path.normpath(path))
  return base[:-len(".npy")] if base.endswith(".npy") else base


def load_bank(source: Union[str, Sequence[str]], checkpoint="best",
              d_model: Optional[int] = None) -> PromptBank:
  """Reads every named prompt and stacks them into one bank (see module doc).

  Raises:
    ValueError: a missing or unreadable prompt (named), two prompts with one name,
      prompts of different shapes, or decoder prompts on some members only.
  """
  entries = _entries(source)
  names = [n for n, _ in entries]
  twice = sorted({n for n in names if names.count(n) > 1})
  if twice:
    raise ValueError(f"prompt names {twice} occur more than once in the bank {source!r}; "
                     "expected each name once (one prompt per task).")
  read = []
  for name, path in entries:
    try:
      flat, where = run_dir.read_prompt_source(path, checkpoint)
    except ValueError as e:
      raise ValueError(f"prompt {name!r}: {e}") from e
    for key, value in flat.items():
      if key in (PROMPT_PATH, DECODER_PROMPT_PATH) and np.ndim(value) != 2:
        raise ValueError(f"prompt {name!r} ({where}): {key} has shape {np.shape(value)}; "
                         "expected one [P, d_model] prompt per bank member.")
    read.append((name, where, flat))
  stacks = {}
  for path in (PROMPT_PATH, DECODER_PROMPT_PATH):
    have = [name for name, _, flat in read if path in flat]
    if have and len(have) != len(read):
      missing = [name for name, _, flat in read if path not in flat]
      raise ValueError(f"{path}: prompts {have} have one, {missing} do not; expected every "
                       "member of a bank to have it or none.")
    if have:
      stacks[path] = spec_lib.stack_bank([flat[path] for _, _, flat in read],
                                         [f"{name} ({where})" for name, where, _ in read],
                                         d_model)
  if not stacks:
    raise ValueError(f"{source!r}: no prompt found in any member.")
  return PromptBank(names=names, sources=[w for _, w, _ in read],
                    encoder=stacks.get(PROMPT_PATH), decoder=stacks.get(DECODER_PROMPT_PATH))
