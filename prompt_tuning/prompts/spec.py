"""What a soft prompt is: where it lives, its length, how many, how it is made and joined.

One `PromptSpec` describes the encoder prompt (Lester et al. 2021) and the
optional decoder prompt alike; the model takes one of each (or none), the
loaders and the trainer read the prompt's path, shape and initializer from it.

A spec with `num_prompts` K = 1 is a single prompt, stored as a `[P, D]`
matrix at its path (`encoder/prompt/prompt`, as every checkpoint of this
project and, after renaming, the reference's). K > 1 is a prompt bank, stored
at the same path as one `[K, P, D]` array: K prompts of one length, and each
example of a batch picks its own by `prompt_ids` ([B] int32), so one frozen
model serves many tasks, or the members of an ensemble, in one forward pass
(the paper's section 1 and section 6). The letter K is the bank size here
(elsewhere in the package it is the attention head dim).
"""
import dataclasses
import re
from typing import Any, Callable, Optional, Sequence

import numpy as np

ENCODER, DECODER = "encoder", "decoder"
# How a prompt may join its stack's input (prompt_tuning.prompts.prompt).
COMBINES = {ENCODER: ("prefix", "after_bos", "suffix"), DECODER: ("prefix",)}


def prompt_path(stack: str) -> str:
  """The "/"-joined parameter path of a stack's prompt (or bank)."""
  return f"{stack}/prompt/prompt"


PROMPT_PATH = prompt_path(ENCODER)            # "encoder/prompt/prompt"
DECODER_PROMPT_PATH = prompt_path(DECODER)    # "decoder/prompt/prompt"
PROMPT_PATHS = (PROMPT_PATH, DECODER_PROMPT_PATH)
# Where google-research/prompt-tuning (flaxformer) keeps the encoder prompt;
# the checkpoint readers and prompt export map it to PROMPT_PATH.
REFERENCE_PROMPT_PATH = "encoder/prompt/prompt/prompt"
# The default TRAINABLE_REGEX: every soft prompt, nothing else.
PROMPTS_REGEX = "|".join(re.escape(p) for p in PROMPT_PATHS)

# Logical axis names of a prompt; it is small and every device needs all of it, so
# none of them is meant to be partitioned.
BANK_AXIS, LENGTH_AXIS, EMBED_AXIS = "prompt_bank", "prompt", "prompt_embed"

# (rng, (P, D), [V, D] frozen embedding table or None) -> [P, D] values.
PromptInit = Callable[[Any, tuple, Optional[np.ndarray]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class PromptSpec:
  """One soft prompt (or bank of prompts) of the model.

  Attributes:
    stack: "encoder" or "decoder": whose embedded input the prompt joins.
    length: P, the prompt positions (> 0).
    num_prompts: K, prompts in the bank; 1 is a plain [P, D] prompt.
    combine: how the prompt joins the input: "prefix", "after_bos" or
      "suffix" for the encoder; the decoder prompt is always a prefix.
    init: a `prompt_tuning.prompts.initializers` closure that makes its
      first value from the frozen embedding table (None: U[-0.5, 0.5]).
      Not part of equality: two specs that differ only in how they were
      initialised describe the same parameter.
    multitask: a `prompt_tuning.prompts.multitask.MultiTaskSpec`: the bank's
      K = num_prompts rows are tasks' prompts, composed from shared and
      task-specific params under the prompt scope (`encoder/prompt/...`);
      `length` is then each task's composed length. None: the bank (or
      prompt) is the param at `path` itself.
  """
  stack: str = ENCODER
  length: int = 100
  num_prompts: int = 1
  combine: str = "prefix"
  init: Optional[PromptInit] = dataclasses.field(default=None, compare=False, repr=False)
  multitask: Optional[Any] = None

  def __post_init__(self):
    if self.stack not in COMBINES:
      raise ValueError(f"PromptSpec.stack={self.stack!r}; expected one of {sorted(COMBINES)}.")
    name = "PROMPT_LENGTH" if self.stack == ENCODER else "DECODER_PROMPT_LENGTH"
    for field, value in ((name, self.length), ("num_prompts", self.num_prompts)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{self.path}: {field}={value!r}; expected an int >= 1.")
    if self.combine not in COMBINES[self.stack]:
      raise ValueError(f"{self.path}: prompt combination {self.combine!r}; expected one of "
                       f"{list(COMBINES[self.stack])} for the {self.stack} prompt.")
    if self.multitask is not None and (self.stack != ENCODER
                                       or self.num_prompts != self.multitask.num_tasks):
      raise ValueError(f"{self.path}: a multi-task prompt of {self.multitask.num_tasks} tasks "
                       f"with num_prompts={self.num_prompts}; expected the encoder prompt with "
                       "one prompt per task.")

  @property
  def path(self) -> str:
    return prompt_path(self.stack)

  @property
  def is_bank(self) -> bool:
    return self.num_prompts > 1

  def shape(self, d_model: int) -> tuple:
    """(P, D) for one prompt, (K, P, D) for a bank."""
    one = (int(self.length), int(d_model))
    return ((int(self.num_prompts),) + one) if self.is_bank else one

  @property
  def axes(self) -> tuple:
    one = (LENGTH_AXIS, EMBED_AXIS)
    return ((BANK_AXIS,) + one) if self.is_bank else one

  def replace(self, **changes) -> "PromptSpec":
    return dataclasses.replace(self, **changes)

  def check(self, value: Any, d_model: int, where: str = "") -> None:
    """Raises ValueError unless `value` has this spec's shape for `d_model`."""
    shape = tuple(np.shape(value))
    if shape != self.shape(d_model):
      want = "(K, P, d_model)" if self.is_bank else "(P, d_model)"
      raise ValueError(f"{where or self.path}: prompt has shape {shape}; expected {want} = "
                       f"{self.shape(d_model)}.")

  @classmethod
  def from_array(cls, stack: str, value: Any, combine: str = "prefix",
                 where: str = "") -> "PromptSpec":
    """The spec a stored [P, D] prompt or [K, P, D] bank fits."""
    shape = tuple(np.shape(value))
    if len(shape) not in (2, 3) or min(shape) < 1:
      raise ValueError(f"{where or prompt_path(stack)}: prompt has shape {shape}; expected "
                       "[P, d_model] (one prompt) or [K, P, d_model] (a bank).")
    return cls(stack=stack, length=shape[-2], num_prompts=shape[0] if len(shape) == 3 else 1,
               combine=combine if stack == ENCODER else "prefix")


def encoder_prompt(length: int, num_prompts: int = 1, combine: str = "prefix",
                   init: Optional[PromptInit] = None) -> PromptSpec:
  """The paper's prompt: P positions joined to the encoder input."""
  return PromptSpec(ENCODER, length, num_prompts, combine, init)


def multitask_prompt(multitask: Any, length: int, combine: str = "prefix",
                     init: Optional[PromptInit] = None) -> PromptSpec:
  """The encoder prompt of a multi-task run: task k's prompt is bank row k.

  Args:
    multitask: a `prompt_tuning.prompts.multitask.MultiTaskSpec`.
    length: PROMPT_LENGTH, the shared prompt's length (with "concat" each
      task's prompt is longer by its task part).
    combine, init: as `encoder_prompt` (`init` makes the shared prompt).
  """
  return PromptSpec(ENCODER, multitask.prompt_length(length), multitask.num_tasks, combine,
                    init, multitask)


def decoder_prompt(length: int, num_prompts: int = 1,
                   init: Optional[PromptInit] = None) -> PromptSpec:
  """P positions in front of the embedded decoder inputs (they get no logits)."""
  return PromptSpec(DECODER, length, num_prompts, "prefix", init)


def stack_bank(prompts: Sequence[Any], names: Optional[Sequence[str]] = None,
               d_model: Optional[int] = None) -> np.ndarray:
  """K single prompts -> one [K, P, D] float32 bank, checked.

  Args:
    prompts: K arrays of shape [P, D].
    names: where each came from, for messages.
    d_model: the model width each prompt must have (None: not checked).

  Raises:
    ValueError: no prompts, a prompt that is not [P, D], a width that is not
      d_model, or prompts of different lengths.
  """
  names = list(names) if names is not None else [f"prompt {i}" for i in range(len(prompts))]
  if not len(prompts):
    raise ValueError("a prompt bank needs at least one prompt; got none.")
  shapes = [tuple(np.shape(p)) for p in prompts]
  for name, shape in zip(names, shapes):
    if len(shape) != 2:
      raise ValueError(f"{name}: prompt has shape {shape}; expected [P, d_model].")
    if d_model is not None and shape[1] != d_model:
      raise ValueError(f"{name}: prompt has shape {shape}; expected width d_model={d_model}.")
  if len(set(shapes)) > 1:
    found = ", ".join(f"{n}: {s}" for n, s in zip(names, shapes))
    raise ValueError(f"prompts of different shapes cannot share a bank ({found}); expected "
                     "one length P and one width d_model.")
  return np.stack([np.asarray(p, np.float32) for p in prompts])
