"""The frozen model: load it from INITIAL_CHECKPOINT_PATH, add the prompt(s).

The pretrained weights go through `prompt_tuning.checkpoints.load` (Hugging
Face dirs, T5X legacy and Orbax checkpoints); the prompt is built by a
`prompt_tuning.prompts.initializers` closure from the frozen [V, D] embedding
table, before any cast of the frozen weights to bfloat16. An optional decoder
prompt (DECODER_PROMPT_LENGTH) starts from U[-0.5, 0.5], the paper's random init.
"""
import logging
import os
from typing import Optional

import jax
import numpy as np

from prompt_tuning import checkpoints
from prompt_tuning.models import T5Config
from prompt_tuning.prompts import initializers
from prompt_tuning.prompts.prompt import DECODER_PROMPT_PATH, PROMPT_PATH, PROMPT_PATHS
from prompt_tuning.train import partition

EMBEDDING_PATH = "token_embedder/embedding"
FROZEN_DTYPES = ("float32", "bfloat16")


def check_checkpoint_path(path: Optional[str]) -> str:
  """Validates INITIAL_CHECKPOINT_PATH before anything is written."""
  if not path:
    raise ValueError("INITIAL_CHECKPOINT_PATH is required: the pretrained T5 checkpoint "
                     "to prompt-tune (a Hugging Face T5 dir or a T5X checkpoint).")
  if "://" not in path and not os.path.exists(path):
    raise ValueError(f"INITIAL_CHECKPOINT_PATH={path!r} does not exist; expected a "
                     "Hugging Face T5 dir or a T5X checkpoint_<step> dir.")
  return path


def check_prompt_lengths(prompt_length: int, decoder_prompt_length: int) -> None:
  """Both >= 0 and at least one > 0: there must be a prompt to tune."""
  for name, value in (("PROMPT_LENGTH", prompt_length),
                      ("DECODER_PROMPT_LENGTH", decoder_prompt_length)):
    if not isinstance(value, int) or value < 0:
      raise ValueError(f"{name}={value!r}; expected an int >= 0.")
  if prompt_length + decoder_prompt_length == 0:
    raise ValueError("PROMPT_LENGTH=0 and DECODER_PROMPT_LENGTH=0; expected at least one "
                     "> 0 (a soft prompt to tune).")


def load_model(initial_checkpoint_path: str, model_config: Optional[T5Config] = None, *,
               prompt_length: int, prompt_combine: str = "prefix",
               dropout_rate: float = 0.1,
               decoder_prompt_length: Optional[int] = None) -> tuple[T5Config, dict]:
  """Loads the pretrained weights and returns the prompt model's config.

  Args:
    initial_checkpoint_path: INITIAL_CHECKPOINT_PATH.
    model_config: the architecture the checkpoint must fit (from a
      configs/models file; its activation dtype and decoder_prompt_length are
      kept); None derives it from the checkpoint.
    prompt_length: P (PROMPT_LENGTH), >= 0.
    prompt_combine: "prefix", "after_bos" or "suffix".
    dropout_rate: DROPOUT_RATE.
    decoder_prompt_length: P_dec (DECODER_PROMPT_LENGTH), >= 0; None takes
      `model_config.decoder_prompt_length` (0 without a model_config).
      `prompt_length + decoder_prompt_length` must be > 0.

  Returns:
    (config with the prompt(s), frozen params: float32 numpy, no prompt).
  """
  path = check_checkpoint_path(initial_checkpoint_path)
  if decoder_prompt_length is None:
    decoder_prompt_length = model_config.decoder_prompt_length if model_config else 0
  check_prompt_lengths(prompt_length, decoder_prompt_length)
  base = (model_config.replace(prompt_length=0, decoder_prompt_length=0)
          if model_config is not None else None)
  config, params = checkpoints.load(path, config=base, dtype="float32")
  flat = partition.flatten(params)
  stored = [p for p in PROMPT_PATHS if p in flat]
  for prompt_path in stored:
    logging.warning("%s holds a prompt at %s; it is replaced by a fresh one (to start "
                    "from a saved prompt, use configs/prompts/from_file.gin).",
                    path, prompt_path)
    del flat[prompt_path]
  if stored:
    params = partition.unflatten(flat)
  config = config.replace(prompt_length=int(prompt_length), prompt_combine=prompt_combine,
                          decoder_prompt_length=int(decoder_prompt_length),
                          dropout_rate=float(dropout_rate))
  if model_config is not None:
    config = config.replace(dtype=model_config.dtype)
  return config, params


def _run_init(prompt_init, shape: tuple, frozen: dict, rng, init_name: str,
              length_name: str) -> np.ndarray:
  """Runs `prompt_init(rng, shape, [V, D] table)`; checks shape and values."""
  table = partition.flatten(frozen)[EMBEDDING_PATH]
  prompt = np.asarray(prompt_init(rng, shape, np.asarray(table, np.float32)), np.float32)
  if prompt.shape != shape:
    raise ValueError(f"{init_name} returned shape {prompt.shape}; expected "
                     f"({length_name}, d_model) = {shape}.")
  if not np.all(np.isfinite(prompt)):
    raise ValueError(f"{init_name} returned non-finite values.")
  return prompt


def make_prompt(config: T5Config, frozen: dict, prompt_init, rng) -> np.ndarray:
  """Runs a prompt initializer on the frozen embedding table; checks the result.

  Returns:
    [P, D] float32 prompt.
  """
  prompt_init = initializers.random_uniform() if prompt_init is None else prompt_init
  return _run_init(prompt_init, (config.prompt_length, config.emb_dim), frozen, rng,
                   "PROMPT_INIT", "PROMPT_LENGTH")


def make_decoder_prompt(config: T5Config, frozen: dict, rng,
                        prompt_init=None) -> np.ndarray:
  """The decoder prompt's start: `prompt_init` (default U[-0.5, 0.5]), checked.

  Returns:
    [P_dec, D] float32 decoder prompt.
  """
  prompt_init = initializers.random_uniform() if prompt_init is None else prompt_init
  return _run_init(prompt_init, (config.decoder_prompt_length, config.emb_dim), frozen,
                   rng, "decoder prompt init", "DECODER_PROMPT_LENGTH")


def with_prompt(frozen: dict, prompt, decoder_prompt=None) -> dict:
  """The full param tree: `frozen` plus the prompt at PROMPT_PATH (if not None)
  and the decoder prompt at DECODER_PROMPT_PATH (if not None)."""
  flat = partition.flatten(frozen)
  if prompt is not None:
    flat[PROMPT_PATH] = prompt
  if decoder_prompt is not None:
    flat[DECODER_PROMPT_PATH] = decoder_prompt
  return partition.unflatten(flat)


def cast_frozen(frozen: dict, dtype: str):
  """FROZEN_PARAMS_DTYPE: keep float32, or hold the frozen weights in bfloat16.

  bfloat16 halves their memory; activations keep the model's activation dtype
  and the trainable params stay float32. It pays off with bfloat16 activations
  (the models/ files' setting for accelerators): with float32 activations the
  layers upcast every weight each step, and XLA's CPU backend materialises those
  float32 copies (benchmarks/prompt_vs_finetune.py measures this).
  """
  if dtype not in FROZEN_DTYPES:
    raise ValueError(f"FROZEN_PARAMS_DTYPE={dtype!r}; expected one of {FROZEN_DTYPES}.")
  return jax.tree.map(lambda x: jax.numpy.asarray(x, dtype), frozen)
