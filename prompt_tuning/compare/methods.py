"""The methods `prompt-tuning compare` knows, each one gin file of configs/methods/.

A `--methods` entry is a method name, or `label=method` to run one method twice
with different settings (`--method_gin=label:MACRO=value` sets them), e.g.

  --methods=design_task_word=prompt_design,design=prompt_design,prompt_tuning,lora
"""
import dataclasses
import difflib
import re
from typing import Sequence

TRAIN, DESIGN = "train", "design"


@dataclasses.dataclass(frozen=True)
class Method:
  """One method: its gin file (under configs/) and the command that runs it."""
  name: str
  gin_file: str
  command: str = TRAIN
  summary: str = ""


METHODS = {m.name: m for m in (
    Method("prompt_design", "methods/prompt_design.gin", DESIGN,
           "a hard text prompt, optionally k demonstrations; nothing trained"),
    Method("prompt_tuning", "methods/prompt_tuning.gin", TRAIN,
           "a soft prompt in front of the encoder input (Lester et al. 2021)"),
    Method("deep_prompts", "methods/deep_prompts.gin", TRAIN,
           "a soft prompt at every encoder layer (P-tuning v2)"),
    Method("prefix", "methods/prefix.gin", TRAIN,
           "learned key/value prefixes in every attention layer (Li & Liang 2021)"),
    Method("lora", "methods/lora.gin", TRAIN, "low-rank updates of q and v (Hu et al. 2021)"),
    Method("ia3", "methods/ia3.gin", TRAIN,
           "learned scales of keys, values and MLP activations (Liu et al. 2022)"),
    Method("model_tuning", "methods/model_tuning.gin", TRAIN,
           "every weight, T5X's fine-tuning settings"),
    Method("model_tuning_top", "methods/model_tuning_top.gin", TRAIN,
           "only the top TOP_LAYERS layers of each stack (the rest frozen)"),
)}

_LABEL = re.compile(r"[A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True)
class Entry:
  """One row of the comparison: a label (its directory name) and its method."""
  label: str
  method: Method


def parse_methods(text: str) -> list[Entry]:
  """`--methods` -> entries, in order.

  Raises:
    ValueError: an empty list, an unknown method (with the closest names), a
      label used twice or not usable as a directory name.
  """
  items = [t.strip() for t in (text or "").split(",") if t.strip()]
  if not items:
    raise ValueError(f"--methods={text!r} names no method; expected a comma-separated list "
                     f"of {sorted(METHODS)}.")
  entries = []
  for item in items:
    label, _, name = item.partition("=") if "=" in item else (item, "", item)
    label, name = label.strip(), name.strip()
    if name not in METHODS:
      close = difflib.get_close_matches(name, METHODS, n=2, cutoff=0.5)
      raise ValueError(f"--methods: unknown method {name!r}; expected one of "
                       f"{sorted(METHODS)}" + (f" (did you mean {' or '.join(close)}?)"
                                               if close else "") + ".")
    if not _LABEL.fullmatch(label):
      raise ValueError(f"--methods: label {label!r} of {item!r}; expected letters, digits, "
                       "'_', '-' or '.' (it names the method's directory).")
    entries.append(Entry(label, METHODS[name]))
  labels = [e.label for e in entries]
  twice = sorted({l for l in labels if labels.count(l) > 1})
  if twice:
    raise ValueError(f"--methods runs {twice} more than once; expected each label once "
                     "(write label=method to run a method twice).")
  return entries


def parse_method_bindings(values: Sequence[str], entries: Sequence[Entry]) -> dict:
  """`--method_gin=label:NAME=VALUE` flags -> {label: ["NAME = VALUE", ...]}.

  Raises:
    ValueError: a malformed flag, or a label that is not in `--methods`.
  """
  labels = {e.label for e in entries}
  out: dict = {label: [] for label in labels}
  for value in values:
    label, sep, binding = value.partition(":")
    if not sep or "=" not in binding:
      raise ValueError(f"--method_gin={value!r}; expected label:NAME=VALUE, e.g. "
                       "lora:LORA_RANK=4.")
    if label not in labels:
      raise ValueError(f"--method_gin={value!r}: {label!r} is not one of --methods "
                       f"{sorted(labels)}.")
    name, val = binding.split("=", 1)
    out[label].append(f"{name.strip()} = {val}")
  return out
