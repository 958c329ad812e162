"""Prompts in and out of files: `.npy` names, the reference's names, prompt directories.

A trained prompt is saved apart from the frozen model, one `.npy` per trained
parameter named by its path with "." for "/":

  encoder.prompt.prompt.npy   the encoder prompt, [P, D] (or a [K, P, D] bank)
  decoder.prompt.prompt.npy   the decoder prompt, if any

google-research/prompt-tuning writes the same arrays without the extension
and under its own path, `encoder.prompt.prompt.prompt`; every reader here
accepts those too, and `rename_reference_prompt` is the one place where the
reference's parameter path becomes ours. `read_prompt_file` reads any of the
forms a prompt is shared in: a `.npy`, a directory of them, or a Hugging Face
PEFT prompt-tuning adapter (prompt_tuning.prompts.peft).
"""
import json
import os
import shutil
from typing import Any, Mapping, Optional

import numpy as np

from prompt_tuning import tree
from prompt_tuning.prompts import peft, spec as spec_lib

NPY_SUFFIX = ".npy"


def npy_name(path: str) -> str:
  """"encoder/prompt/prompt" -> "encoder.prompt.prompt.npy"."""
  return path.replace("/", ".") + NPY_SUFFIX


def param_path(file_name: str) -> str:
  """A prompt file's name -> the parameter path it holds (ours or the reference's).

  "encoder.prompt.prompt.npy" and the reference's "encoder.prompt.prompt.prompt"
  both give "encoder/prompt/prompt".
  """
  name = file_name[:-len(NPY_SUFFIX)] if file_name.endswith(NPY_SUFFIX) else file_name
  path = name.replace(".", "/")
  return spec_lib.PROMPT_PATH if path == spec_lib.REFERENCE_PROMPT_PATH else path


def rename_reference_prompt(flat: Mapping[str, Any], where: str = "params") -> dict:
  """Moves a prompt stored at the reference's `encoder/prompt/prompt/prompt` to ours.

  Args:
    flat: {"/"-path: leaf}.
    where: the source, for messages.

  Returns:
    A new flat dict with the prompt, if any, at `PROMPT_PATH`.
  """
  flat = dict(flat)
  if spec_lib.REFERENCE_PROMPT_PATH in flat:
    if spec_lib.PROMPT_PATH in flat:
      raise ValueError(f"{where} holds a prompt at both {spec_lib.PROMPT_PATH} and "
                       f"{spec_lib.REFERENCE_PROMPT_PATH}; expected at most one.")
    flat[spec_lib.PROMPT_PATH] = flat.pop(spec_lib.REFERENCE_PROMPT_PATH)
  return flat


def _is_prompt_file(name: str) -> bool:
  return name.endswith(NPY_SUFFIX) or name == npy_name(spec_lib.REFERENCE_PROMPT_PATH)[
      :-len(NPY_SUFFIX)]


def read_npy_dir(directory: str) -> dict[str, np.ndarray]:
  """{param path: array} of every prompt file in `directory` (ours or the reference's).

  Raises:
    ValueError: no such directory, no prompt file in it, or one path twice.
  """
  if not os.path.isdir(directory):
    raise ValueError(f"{directory}: no such directory; expected a directory of "
                     f"{npy_name(spec_lib.PROMPT_PATH)} files.")
  flat: dict = {}
  for name in sorted(os.listdir(directory)):
    if not _is_prompt_file(name) or not os.path.isfile(os.path.join(directory, name)):
      continue
    path = param_path(name)
    if path in flat:
      raise ValueError(f"{directory} holds {path} twice (ours and the reference's name); "
                       "expected one file per parameter.")
    flat[path] = read_npy(os.path.join(directory, name))
  if not flat:
    found = sorted(os.listdir(directory))[:10]
    raise ValueError(f"{directory} holds no prompt files; expected "
                     f"{npy_name(spec_lib.PROMPT_PATH)} (found {found}).")
  return flat


def read_npy(path: str) -> np.ndarray:
  """One saved array (a `.npy`, with or without the extension), checked finite."""
  if not os.path.isfile(path):
    raise ValueError(f"{path}: no such file; expected a .npy prompt.")
  try:
    value = np.load(path, allow_pickle=False)
  except ValueError as e:
    raise ValueError(f"{path} is not a .npy array file: {e}") from e
  if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
    raise ValueError(f"{path}: expected finite floating-point values; found dtype "
                     f"{value.dtype}" + ("" if not np.issubdtype(value.dtype, np.floating)
                                         else " with non-finite values") + ".")
  return value


def read_prompt_file(path: str) -> dict[str, np.ndarray]:
  """{param path: array} of a shared prompt, whatever form it comes in.

  Args:
    path: a `.npy` file (the encoder prompt, [P, D] or a [K, P, D] bank), a
      directory of prompt files (ours, or the reference's numpy checkpoint),
      or a PEFT prompt-tuning adapter directory.

  Raises:
    ValueError: nothing readable at `path` (what was expected is named).
  """
  if peft.is_adapter_dir(path):
    return {spec_lib.PROMPT_PATH: peft.load_adapter(path)[0]}
  if os.path.isdir(path):
    return read_npy_dir(path)
  if os.path.isfile(path):
    return {spec_lib.PROMPT_PATH: read_npy(path)}
  raise ValueError(f"{path}: no such file or directory; expected a .npy prompt, a directory "
                   f"of prompt files, or a PEFT adapter directory ({peft.CONFIG_FILE}).")


def write_npy_dir(directory: str, params: Any, extra_json: Optional[dict] = None,
                  json_name: str = "best.json") -> str:
  """Writes every leaf of `params` as `<path>.npy` into `directory`, atomically.

  The files go to `directory.tmp` first, which then replaces `directory`; a
  kill leaves either the old directory or the new one (an interrupted swap
  leaves `directory.old`, which `recover_npy_dir` puts back).
  """
  tmp = directory + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  for path, value in tree.flatten(params).items():
    np.save(os.path.join(tmp, npy_name(path)), np.asarray(value))
  if extra_json is not None:
    with open(os.path.join(tmp, json_name), "w") as f:
      json.dump(extra_json, f, indent=1, sort_keys=True)
  old = directory + ".old"
  if os.path.exists(directory):
    os.replace(directory, old)
  os.replace(tmp, directory)
  shutil.rmtree(old, ignore_errors=True)
  return directory


def recover_npy_dir(directory: str) -> None:
  """Finishes a swap `write_npy_dir` was killed in (only `directory.old` is left)."""
  old = directory + ".old"
  if not os.path.exists(directory) and os.path.exists(old):
    os.replace(old, directory)


def prompt_specs(flat: Mapping[str, Any], combine: str = "prefix",
                 where: str = "params") -> dict[str, spec_lib.PromptSpec]:
  """{"encoder"/"decoder": PromptSpec} of the prompts in `flat` ({path: array})."""
  specs = {}
  for stack in (spec_lib.ENCODER, spec_lib.DECODER):
    path = spec_lib.prompt_path(stack)
    if path in flat:
      specs[stack] = spec_lib.PromptSpec.from_array(stack, flat[path], combine,
                                                    where=f"{where}: {path}")
  return specs
