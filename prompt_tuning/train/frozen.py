"""The frozen model: load it from INITIAL_CHECKPOINT_PATH, add the prompt.

The pretrained weights go through `prompt_tuning.checkpoints.load` (Hugging
Face dirs, T5X legacy and Orbax checkpoints); the prompt is built by a
`prompt_tuning.prompts.initializers` closure from the frozen [V, D] embedding
table, before any cast of the frozen weights to bfloat16.
"""
import logging
import os
from typing import Optional

import jax
import numpy as np

from prompt_tuning import checkpoints
from prompt_tuning.models import T5Config
from prompt_tuning.prompts import initializers
from prompt_tuning.prompts.prompt import PROMPT_PATH
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


def load_model(initial_checkpoint_path: str, model_config: Optional[T5Config] = None, *,
               prompt_length: int, prompt_combine: str = "prefix",
               dropout_rate: float = 0.1) -> tuple[T5Config, dict]:
  """Loads the pretrained weights and returns the prompt model's config.

  Args:
    initial_checkpoint_path: INITIAL_CHECKPOINT_PATH.
    model_config: the architecture the checkpoint must fit (from a
      configs/models file; its activation dtype is kept); None derives it from
      the checkpoint.
    prompt_length: P (PROMPT_LENGTH), > 0.
    prompt_combine: "prefix", "after_bos" or "suffix".
    dropout_rate: DROPOUT_RATE.

  Returns:
    (config with the prompt, frozen params: float32 numpy, no prompt).
  """
  path = check_checkpoint_path(initial_checkpoint_path)
  if prompt_length <= 0:
    raise ValueError(f"PROMPT_LENGTH={prompt_length}; expected > 0.")
  base = model_config.replace(prompt_length=0) if model_config is not None else None
  config, params = checkpoints.load(path, config=base, dtype="float32")
  flat = partition.flatten(params)
  if PROMPT_PATH in flat:
    logging.warning("%s holds a prompt at %s; it is replaced by PROMPT_INIT (to start "
                    "from a saved prompt, use configs/prompts/from_file.gin).",
                    path, PROMPT_PATH)
    del flat[PROMPT_PATH]
    params = partition.unflatten(flat)
  config = config.replace(prompt_length=int(prompt_length), prompt_combine=prompt_combine,
                          dropout_rate=float(dropout_rate))
  if model_config is not None:
    config = config.replace(dtype=model_config.dtype)
  return config, params


def make_prompt(config: T5Config, frozen: dict, prompt_init, rng) -> np.ndarray:
  """Runs a prompt initializer on the frozen embedding table; checks the result.

  Returns:
    [P, D] float32 prompt.
  """
  prompt_init = initializers.random_uniform() if prompt_init is None else prompt_init
  shape = (config.prompt_length, config.emb_dim)
  table = partition.flatten(frozen)[EMBEDDING_PATH]
  prompt = np.asarray(prompt_init(rng, shape, np.asarray(table, np.float32)), np.float32)
  if prompt.shape != shape:
    raise ValueError(f"PROMPT_INIT returned shape {prompt.shape}; expected "
                     f"(PROMPT_LENGTH, d_model) = {shape}.")
  if not np.all(np.isfinite(prompt)):
    raise ValueError("PROMPT_INIT returned non-finite values.")
  return prompt


def with_prompt(frozen: dict, prompt) -> dict:
  """The full param tree: `frozen` plus the prompt at PROMPT_PATH."""
  flat = partition.flatten(frozen)
  flat[PROMPT_PATH] = prompt
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
