"""Checkpoints in and out: one `load` for every format we read, `save_hf` to export.

    config, params = checkpoints.load("gs://t5-data/pretrained_models/t5x/t5_1_1_base/checkpoint_1000000")
    config, params = checkpoints.load("/models/t5-base-lm-adapt", dtype="bfloat16")
    checkpoints.save_hf(config, params, "/tmp/exported")

`params` is a plain nested dict of numpy arrays with T5X names, ready for
`Transformer(config).apply({"params": params}, ...)`.
"""
import os
from typing import Optional

from etils import epath

from prompt_tuning.checkpoints import hf, t5x, validation
from prompt_tuning.checkpoints.hf import save_hf
from prompt_tuning.checkpoints.validation import derive_config, validate_params
from prompt_tuning.models import T5Config

__all__ = ["load", "detect_format", "save_hf", "validate_params", "derive_config",
           "HF", "T5X_LEGACY", "ORBAX"]

HF = "hf"                  # config.json + model.safetensors / pytorch_model.bin
T5X_LEGACY = "t5x_legacy"  # msgpack `checkpoint` + tensorstore (zarr) arrays
ORBAX = "orbax"            # Orbax PyTree dir (T5X's checkpoint_<N>/state)

_EXPECTED = (
    "a Hugging Face T5 dir (config.json + model.safetensors or pytorch_model.bin), "
    "a T5X step dir or its msgpack `checkpoint` file, a T5X Orbax step dir "
    "(state/_METADATA) or Orbax PyTree dir (_METADATA), or a T5X model dir "
    "holding checkpoint_<step> dirs")


def detect_format(path: str) -> tuple[str, str]:
  """Says what `path` holds and where exactly to read it.

  A T5X model dir resolves to its latest `checkpoint_<step>`; a step dir to its
  msgpack file or its Orbax `state` dir.

  Args:
    path: a file or directory, local or gs:// (gs:// for T5X formats).

  Returns:
    (format, resolved path): format is `HF`, `T5X_LEGACY` (path = the msgpack
    file) or `ORBAX` (path = the PyTree directory).

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: nothing recognisable there.
  """
  p = epath.Path(path)
  if not p.exists():
    raise FileNotFoundError(f"{path}: no such file or directory; expected {_EXPECTED}.")
  if not p.is_dir():
    if p.name in hf.WEIGHT_FILES or p.name.endswith(".safetensors"):
      return HF, os.fspath(p.parent)
    if p.name == t5x.ORBAX_METADATA:
      return ORBAX, os.fspath(p.parent)
    if p.name == t5x.CHECKPOINT_FILE:
      return T5X_LEGACY, os.fspath(p)
    raise ValueError(f"{path}: not a recognised checkpoint file; expected {_EXPECTED}.")

  if hf.is_hf_dir(os.fspath(p)):
    return HF, os.fspath(p)
  # Orbax before legacy: an Orbax dir may also hold a `checkpoint` msgpack.
  for sub in ("", t5x.STATE_DIR):
    if (p / sub / t5x.ORBAX_METADATA).exists():
      return ORBAX, os.fspath(p / sub) if sub else os.fspath(p)
  for sub in ("", t5x.STATE_DIR):
    file = p / sub / t5x.CHECKPOINT_FILE
    if file.exists() and not file.is_dir():
      return T5X_LEGACY, os.fspath(file)
  step_dir = t5x.latest_step_dir(os.fspath(p))
  if step_dir is not None:
    return detect_format(step_dir)
  found = sorted(child.name for child in p.iterdir())
  shown = ", ".join(found[:10]) + (f", ... ({len(found)} entries)" if len(found) > 10 else "")
  raise ValueError(f"{path}: no recognised checkpoint; expected {_EXPECTED}; "
                   f"found [{shown}].")


def load(path: str, config: Optional[T5Config] = None,
         dtype: str = "float32") -> tuple[T5Config, dict]:
  """Loads a pretrained T5 checkpoint of any supported format.

  The config comes from `config.json` (Hugging Face) or from the param shapes
  (T5X; a gated MLP is read as T5 1.1's gated GELU, a single one as ReLU).
  A given `config` replaces it and the params must fit it exactly. Either way
  every param is checked before the arrays are returned: missing, unexpected
  and wrong-shape params are listed in one ValueError.

  Args:
    path: see `detect_format`.
    config: the model config the params must fit; derived when None.
    dtype: "float32" or "bfloat16" for the returned arrays (the config's
      activation `dtype` is left as it is).

  Returns:
    (config, params): params a plain nested dict of numpy arrays with T5X names.
  """
  validation.check_dtype(dtype)
  fmt, where = detect_format(path)
  if fmt == HF:
    return hf.load_hf(where, config, dtype)
  if fmt == ORBAX:
    return t5x.load_orbax(where, config, dtype)
  return t5x.load_legacy(where, config, dtype)
