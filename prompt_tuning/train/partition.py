"""Splits the parameter tree into what is trained and what stays frozen.

Paths are the "/"-joined keys of the nested param dict, as T5X names them
(`encoder/layers_0/attention/query/kernel`); the soft prompt is at
`prompt_tuning.prompts.prompt.PROMPT_PATH`, the optional decoder prompt at
`DECODER_PROMPT_PATH`. A regex is matched against the whole path
(`re.fullmatch`), so `encoder/prompt/prompt` matches the prompt and nothing
else, and `.*_norm/scale` matches every layer-norm scale.
"""
import re
from typing import Any, Mapping, Optional

import numpy as np

from prompt_tuning.prompts.prompt import PROMPT_PATHS

Params = Mapping[str, Any]

# Default TRAINABLE_REGEX: the soft prompts only, i.e. the encoder prompt and the
# decoder prompt when the model has one (derived from PROMPT_PATHS):
# "encoder/prompt/prompt|decoder/prompt/prompt".
DEFAULT_TRAINABLE_REGEX = "|".join(re.escape(p) for p in PROMPT_PATHS)


def flatten(tree: Params, prefix: str = "") -> dict[str, Any]:
  """Nested dict -> {"a/b/c": leaf}, in sorted key order."""
  flat = {}
  for key in sorted(tree):
    path = f"{prefix}/{key}" if prefix else str(key)
    value = tree[key]
    if isinstance(value, Mapping):
      flat.update(flatten(value, path))
    else:
      flat[path] = value
  return flat


def unflatten(flat: Mapping[str, Any]) -> dict:
  """{"a/b/c": leaf} -> nested dict (the inverse of `flatten`)."""
  tree: dict = {}
  for path, value in flat.items():
    *parents, leaf = path.split("/")
    node = tree
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = value
  return tree


def trainable_paths(params: Params, regex: Optional[str] = None) -> list[str]:
  """Sorted paths that `regex` (default: the prompts only) fully matches."""
  pattern = re.compile(DEFAULT_TRAINABLE_REGEX if regex is None else regex)
  return [p for p in flatten(params) if pattern.fullmatch(p)]


def split(params: Params, regex: Optional[str] = None) -> tuple[dict, dict]:
  """Splits params into (trainable, frozen) nested dicts by `regex`.

  Args:
    params: the model's nested param dict.
    regex: TRAINABLE_REGEX, matched against whole "/"-joined paths; None means
      the prompts only (encoder, and decoder if present).

  Returns:
    (trainable, frozen): two nested dicts whose union is `params`.

  Raises:
    ValueError: the regex matches no parameter (nothing would train).
  """
  chosen = set(trainable_paths(params, regex))
  if not chosen:
    flat = flatten(params)
    raise ValueError(
        f"TRAINABLE_REGEX={regex or DEFAULT_TRAINABLE_REGEX!r} matches no parameter, so "
        f"nothing would train. It is matched with re.fullmatch against paths such as "
        f"{sorted(flat)[:4]} (of {len(flat)}); is PROMPT_LENGTH or DECODER_PROMPT_LENGTH "
        "> 0?")
  flat = flatten(params)
  trainable = {p: v for p, v in flat.items() if p in chosen}
  frozen = {p: v for p, v in flat.items() if p not in chosen}
  return unflatten(trainable), unflatten(frozen)


def merge(trainable: Params, frozen: Params) -> dict:
  """The inverse of `split`: one nested dict holding both (no path in both)."""
  flat_t, flat_f = flatten(trainable), flatten(frozen)
  both = sorted(set(flat_t) & set(flat_f))
  assert not both, f"params both trainable and frozen: {both}"
  return unflatten({**flat_f, **flat_t})


def to_numpy(tree: Any) -> Any:
  """A pytree of device arrays -> the same pytree of host numpy arrays."""
  if isinstance(tree, Mapping):
    return {k: to_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)


def npy_name(path: str) -> str:
  """File name a param is exported under: "encoder/prompt/prompt" -> "encoder.prompt.prompt.npy"."""
  return path.replace("/", ".") + ".npy"
