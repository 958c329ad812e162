"""Hugging Face PEFT prompt-tuning adapters in and out (`PROMPT_TUNING`, `SEQ_2_SEQ_LM`).

An adapter directory holds `adapter_config.json` and `adapter_model.safetensors`
with one tensor, `prompt_embeddings`, of shape [num_virtual_tokens *
num_transformer_submodules, token_dim]. PEFT's quirk for seq2seq models: it
defaults to `num_transformer_submodules = 2`, so the tensor has 2P rows, and
prompt tuning puts only the first P in front of the encoder input (PEFT's
`PeftModelForSeq2SeqLM.forward`); the other P rows are never used. Reading
accepts both; writing uses 1 unless asked, so the file holds exactly the prompt.

The frozen model a PEFT adapter goes with is the Hugging Face directory
`prompt_tuning.checkpoints.save_hf` writes from the same weights (or the hub
checkpoint they came from), named by `base_model_name_or_path`.
"""
import json
import os
import shutil
from typing import Any, Optional

import numpy as np

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
TORCH_WEIGHTS_FILE = "adapter_model.bin"  # PEFT's older format (read with torch)
PROMPT_KEY = "prompt_embeddings"
PEFT_TYPE = "PROMPT_TUNING"
TASK_TYPE = "SEQ_2_SEQ_LM"
INITS = ("RANDOM", "TEXT", "SAMPLE_VOCAB")


def is_adapter_dir(path: str) -> bool:
  return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE))


def save_adapter(directory: str, prompt: Any, *, num_heads: Optional[int] = None,
                 num_layers: Optional[int] = None,
                 base_model_name_or_path: Optional[str] = None,
                 num_transformer_submodules: int = 1, prompt_tuning_init: str = "RANDOM",
                 prompt_tuning_init_text: Optional[str] = None,
                 overwrite: bool = False) -> str:
  """Writes a [P, D] encoder prompt as a PEFT prompt-tuning adapter directory.

  `peft.PeftModel.from_pretrained(hf_t5, directory)` then prepends the same
  prompt to the encoder input that this project's model does (tested).

  Args:
    directory: created; written to a temporary name first and renamed.
    prompt: [P, D] float32 encoder prompt.
    num_heads, num_layers: the frozen model's (PEFT's `num_attention_heads`,
      `num_layers`); None lets PEFT read them from the base model.
    base_model_name_or_path: the frozen model (HF hub id or directory).
    num_transformer_submodules: 1 (the file holds the P prompt rows) or 2
      (PEFT's seq2seq default: P more rows follow, zeros, which prompt tuning
      never reads).
    prompt_tuning_init, prompt_tuning_init_text: recorded as PEFT records them.
    overwrite: replace an existing adapter.

  Returns:
    `directory`.
  """
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
  prompt = np.asarray(prompt, np.float32)
  if prompt.ndim != 2 or min(prompt.shape) < 1:
    raise ValueError(f"{directory}: a PEFT prompt-tuning adapter holds one [P, d_model] "
                     f"prompt; got shape {prompt.shape} (export a bank one prompt at a time).")
  if num_transformer_submodules not in (1, 2):
    raise ValueError(f"num_transformer_submodules={num_transformer_submodules}; expected 1 or "
                     "2.")
  if prompt_tuning_init not in INITS:
    raise ValueError(f"prompt_tuning_init={prompt_tuning_init!r}; expected one of {INITS}.")
  if os.path.exists(directory) and not overwrite:
    raise FileExistsError(f"{directory} exists; pass overwrite=True (--overwrite) to replace "
                          "it.")
  length, d_model = prompt.shape
  rows = prompt if num_transformer_submodules == 1 else np.concatenate(
      [prompt, np.zeros_like(prompt)])
  config = {
      "auto_mapping": None, "base_model_name_or_path": base_model_name_or_path,
      "inference_mode": True, "modules_to_save": None, "num_attention_heads": num_heads,
      "num_layers": num_layers, "num_transformer_submodules": num_transformer_submodules,
      "num_virtual_tokens": int(length), "peft_type": PEFT_TYPE,
      "prompt_tuning_init": prompt_tuning_init,
      "prompt_tuning_init_text": prompt_tuning_init_text, "revision": None,
      "task_type": TASK_TYPE, "token_dim": int(d_model), "tokenizer_kwargs": None,
      "tokenizer_name_or_path": None,
  }
  tmp = directory.rstrip("/") + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  save_file({PROMPT_KEY: np.ascontiguousarray(rows)}, os.path.join(tmp, WEIGHTS_FILE),
            metadata={"format": "pt"})
  with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  if os.path.exists(directory):
    shutil.rmtree(directory)
  os.replace(tmp, directory)
  return directory


def _read_weights(directory: str) -> np.ndarray:
  path = os.path.join(directory, WEIGHTS_FILE)
  if os.path.isfile(path):
    from safetensors import SafetensorError  # pylint: disable=import-outside-toplevel
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    try:
      state = load_file(path)
    except SafetensorError as e:
      raise ValueError(f"{path}: cannot read it as safetensors ({e}); expected PEFT's "
                       "adapter weights.") from e
  elif os.path.isfile(os.path.join(directory, TORCH_WEIGHTS_FILE)):
    path = os.path.join(directory, TORCH_WEIGHTS_FILE)
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ImportError(f"{path}: reading PEFT's .bin weights needs torch.") from e
    state = {k: v.float().numpy() for k, v in
             torch.load(path, map_location="cpu", weights_only=True).items()}
  else:
    raise ValueError(f"{directory}: no adapter weights; expected {WEIGHTS_FILE} (or "
                     f"{TORCH_WEIGHTS_FILE}) beside {CONFIG_FILE}.")
  if PROMPT_KEY not in state:
    raise ValueError(f"{path}: no {PROMPT_KEY!r} tensor; found {sorted(state)}.")
  return np.asarray(state[PROMPT_KEY], np.float32)


def read_config(directory: str) -> dict:
  """The JSON object in `directory/adapter_config.json` (any PEFT method).

  Raises:
    ValueError: no such file, not JSON, or not an object (naming the file).
  """
  path = os.path.join(directory, CONFIG_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      config = json.load(f)
  except FileNotFoundError as e:
    raise ValueError(f"{directory}: no {CONFIG_FILE}; expected a PEFT adapter directory.") from e
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e}); expected a PEFT adapter config.") from e
  if not isinstance(config, dict):
    raise ValueError(f"{path}: expected a JSON object; found {type(config).__name__}.")
  return config


def load_adapter(directory: str) -> tuple[np.ndarray, dict]:
  """Reads a PEFT prompt-tuning adapter: ([P, D] float32 encoder prompt, its config).

  Raises:
    ValueError: not a prompt-tuning adapter (e.g. LoRA), a malformed config, or
      weights whose shape the config does not explain.
  """
  path = os.path.join(directory, CONFIG_FILE)
  config = read_config(directory)
  if config.get("peft_type") != PEFT_TYPE:
    raise ValueError(f"{path}: peft_type={config.get('peft_type')!r}; expected {PEFT_TYPE!r} "
                     "(a prompt-tuning adapter; other PEFT methods are not soft prompts).")
  if config.get("task_type") not in (TASK_TYPE, None):
    raise ValueError(f"{path}: task_type={config.get('task_type')!r}; expected {TASK_TYPE!r} "
                     "(an encoder-decoder model such as T5).")
  length = config.get("num_virtual_tokens")
  submodules = config.get("num_transformer_submodules") or 1
  if not isinstance(length, int) or length < 1 or submodules not in (1, 2):
    raise ValueError(f"{path}: num_virtual_tokens={length!r}, num_transformer_submodules="
                     f"{submodules!r}; expected an int >= 1 and 1 or 2.")
  rows = _read_weights(directory)
  if rows.ndim != 2 or rows.shape[0] != length * submodules:
    raise ValueError(f"{directory}: {PROMPT_KEY} has shape {rows.shape}; expected "
                     f"[num_virtual_tokens * num_transformer_submodules, token_dim] = "
                     f"[{length * submodules}, {config.get('token_dim')}].")
  if config.get("token_dim") not in (None, rows.shape[1]):
    raise ValueError(f"{directory}: {PROMPT_KEY} has width {rows.shape[1]}; the config says "
                     f"token_dim={config['token_dim']}.")
  prompt = rows[:length]  # what PEFT puts in front of the encoder input
  if not np.all(np.isfinite(prompt)):
    raise ValueError(f"{directory}: {PROMPT_KEY} has non-finite values.")
  return prompt, config
