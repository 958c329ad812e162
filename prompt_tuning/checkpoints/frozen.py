"""The frozen model: load it from INITIAL_CHECKPOINT_PATH, hold it, add the prompt(s).

The pretrained weights go through `prompt_tuning.checkpoints.load` (Hugging
Face dirs, T5X legacy and Orbax checkpoints). INITIAL_CHECKPOINT_PATH may also be
a model-tuning run's MODEL_DIR (`methods/model_tuning*.gin`): its own
INITIAL_CHECKPOINT_PATH with the weights it tuned (best/, else the latest
`.npy` export) in place, so a model can be tuned on task A, then on B from the
A-tuned weights (and so on down a chain of runs). The prompts are described by
`PromptSpec`s and made by `initializers.make_prompt` from the frozen [V, D]
embedding table, before any cast of the frozen weights to bfloat16.
"""
import logging
import os
from typing import Mapping, Optional

import jax
import numpy as np

from prompt_tuning import tree
from prompt_tuning.checkpoints import load, run_dir
from prompt_tuning.checkpoints.validation import DTYPES
from prompt_tuning.models import T5Config, scan
from prompt_tuning.prompts import spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATHS, PromptSpec

EMBEDDING_PATH = "token_embedder/embedding"


def check_checkpoint_path(path: Optional[str]) -> str:
  """Validates INITIAL_CHECKPOINT_PATH before anything is written."""
  if not path:
    raise ValueError("INITIAL_CHECKPOINT_PATH is required: the pretrained T5 checkpoint "
                     "to prompt-tune (a Hugging Face T5 dir or a T5X checkpoint).")
  if "://" not in path and not os.path.exists(path):
    raise ValueError(f"INITIAL_CHECKPOINT_PATH={path!r} does not exist; expected a "
                     "Hugging Face T5 dir or a T5X checkpoint_<step> dir.")
  return path


def prompt_specs(prompt_length: int, decoder_prompt_length: int = 0,
                 prompt_combine: str = "prefix", prompt_init=None, decoder_prompt_init=None,
                 num_prompts: int = 1) -> tuple[Optional[PromptSpec], Optional[PromptSpec]]:
  """PROMPT_LENGTH / DECODER_PROMPT_LENGTH -> the model's (encoder, decoder) specs.

  A length of 0 means no such prompt; at least one must be > 0 (a prompt to tune).
  """
  for name, value in (("PROMPT_LENGTH", prompt_length),
                      ("DECODER_PROMPT_LENGTH", decoder_prompt_length)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ValueError(f"{name}={value!r}; expected an int >= 0.")
  if prompt_length + decoder_prompt_length == 0:
    raise ValueError("PROMPT_LENGTH=0 and DECODER_PROMPT_LENGTH=0; expected at least one "
                     "> 0 (a soft prompt to tune).")
  encoder = (spec_lib.encoder_prompt(prompt_length, num_prompts, prompt_combine, prompt_init)
             if prompt_length else None)
  decoder = (spec_lib.decoder_prompt(decoder_prompt_length, num_prompts, decoder_prompt_init)
             if decoder_prompt_length else None)
  return encoder, decoder


def load_frozen(initial_checkpoint_path: str, model_config: Optional[T5Config] = None, *,
                dropout_rate: float = 0.1) -> tuple[T5Config, dict]:
  """Loads the pretrained weights the prompts are tuned against.

  Args:
    initial_checkpoint_path: INITIAL_CHECKPOINT_PATH.
    model_config: the architecture the checkpoint must fit (from a
      configs/models file; its activation dtype is kept); None derives it from
      the checkpoint.
    dropout_rate: DROPOUT_RATE.

  Returns:
    (config, frozen params: float32 numpy, without any stored prompt). The
    config keeps `model_config`'s activation dtype, remat policy and
    scan_layers; the params are in its layout (stacked layers with scan_layers,
    see `prompt_tuning.models.scan`).
  """
  path = check_checkpoint_path(initial_checkpoint_path)
  config, params = _load_weights(path, model_config)
  flat = tree.flatten(params)
  for prompt_path in [p for p in PROMPT_PATHS if p in flat]:
    logging.warning("%s holds a prompt at %s; it is not used (to start from a saved "
                    "prompt, use configs/prompts/from_file.gin).", path, prompt_path)
    del flat[prompt_path]
  config = config.replace(dropout_rate=float(dropout_rate))
  if model_config is not None:
    config = config.replace(dtype=model_config.dtype, remat_policy=model_config.remat_policy,
                            scan_layers=model_config.scan_layers)
  return config, scan.to_layout(tree.unflatten(flat), config)


def _load_weights(path: str, model_config: Optional[T5Config], seen: tuple = ()
                  ) -> tuple[T5Config, dict]:
  """A checkpoint's (config, unstacked params), or a model-tuning run's (see module doc)."""
  if not (os.path.isdir(path) and run_dir.is_run_dir(path)):
    return load(path, config=model_config, dtype="float32")
  if os.path.abspath(path) in seen:
    raise ValueError(f"INITIAL_CHECKPOINT_PATH={path!r}: the runs' INITIAL_CHECKPOINT_PATHs "
                     f"form a cycle through {list(seen)}.")
  base = run_dir.read_meta(path).get("initial_checkpoint_path")
  if not base:
    raise ValueError(f"INITIAL_CHECKPOINT_PATH={path!r} is a run without a recorded "
                     "INITIAL_CHECKPOINT_PATH; expected a checkpoint or a model-tuning run.")
  tuned, where = run_dir.read_trainable(
      path, "best" if os.path.isdir(run_dir.best_dir(path)) else "latest")
  weights = {k: v for k, v in tuned.items() if k not in PROMPT_PATHS}
  if not weights:
    raise ValueError(f"INITIAL_CHECKPOINT_PATH={path!r} is a prompt-tuning run ({where} holds "
                     "prompts only); expected a checkpoint or a model-tuning run (to start "
                     "from its prompt, use prompts/from_file.gin).")
  config, params = _load_weights(check_checkpoint_path(base), model_config,
                                 seen + (os.path.abspath(path),))
  flat = tree.flatten(params)
  unknown = sorted(set(weights) - set(flat))
  mismatched = [f"{k}: {np.shape(v)}, expected {np.shape(flat[k])}"
                for k, v in weights.items() if k in flat and np.shape(v) != np.shape(flat[k])]
  if unknown or mismatched:
    raise ValueError(f"INITIAL_CHECKPOINT_PATH={path!r}: {where} does not fit its base model "
                     f"{base!r}; params not in it: {unknown[:5]}; shape mismatches: "
                     f"{mismatched[:5]} (an adapter run's params, or stacked layers, are not "
                     "model weights).")
  flat.update({k: np.asarray(v, np.float32) for k, v in weights.items()})
  return config, tree.unflatten(flat)


def embedding_table(frozen: Mapping) -> np.ndarray:
  """The frozen [V, D] token embedding table, float32 (what initializers read)."""
  return np.asarray(tree.flatten(frozen)[EMBEDDING_PATH], np.float32)


def with_prompts(frozen: Mapping, prompts: Mapping[str, np.ndarray]) -> dict:
  """The full param tree: `frozen` plus each {path: prompt} (paths of PROMPT_PATHS)."""
  unknown = sorted(set(prompts) - set(PROMPT_PATHS))
  if unknown:
    raise ValueError(f"with_prompts: {unknown} are not prompt paths; expected {PROMPT_PATHS}.")
  return tree.merge(frozen, tree.unflatten(dict(prompts)))


def check_frozen_dtype(dtype: str) -> str:
  """Validates FROZEN_PARAMS_DTYPE ("float32" or "bfloat16") before anything runs."""
  if dtype not in DTYPES:
    raise ValueError(f"FROZEN_PARAMS_DTYPE={dtype!r}; expected one of {DTYPES}.")
  return dtype


def cast_frozen(frozen: Mapping, dtype: str):
  """FROZEN_PARAMS_DTYPE: keep float32, or hold the frozen weights in bfloat16.

  bfloat16 halves their memory; activations keep the model's activation dtype
  and the trainable params stay float32. It pays off with bfloat16 activations
  (the models/ files' setting for accelerators): with float32 activations the
  layers upcast every weight each step, and XLA's CPU backend materialises those
  float32 copies (benchmarks/prompt_vs_finetune.py measures this).
  """
  check_frozen_dtype(dtype)
  return jax.tree.map(lambda x: jax.numpy.asarray(x, dtype), frozen)
