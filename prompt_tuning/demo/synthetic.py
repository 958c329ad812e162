"""Synthetic text-to-text tasks for the offline demo.

Every task reads the same kind of input, a short sequence of words drawn from
two categories (colors and animals), so only the task word at the front tells
the model which task to do: the way T5 learned its tasks. The demo's frozen
model is pretrained on all of them with their task words; prompt tuning then
learns a soft prompt that stands in for the missing task word of one of them
(the paper's "taskless" setting).

Splits are generated from fixed seeds; validation and test drop any input that
also occurs in train, so held-out accuracy is measured on unseen inputs.
"""
import dataclasses
import functools
import random
from typing import Callable, Iterator, Sequence

COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white")
ANIMALS = ("cat", "dog", "bird", "fish", "horse", "cow", "lion", "bear")
WORDS = COLORS + ANIMALS
# Odd lengths only, so "majority" never ties.
LENGTHS = (3, 5, 7)
NUMBER_WORDS = {3: "three", 5: "five", 7: "seven"}
SPLIT_SIZES = {"train": 20000, "validation": 500, "test": 500}
_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class SyntheticTask:
  """A task: its word (prefix in the input) and how a target is computed.

  Attributes:
    word: the task word that introduces inputs ("majority: cat red dog").
    target_fn: words -> target text.
    labels: the closed label set for classification tasks (empty = generative).
  """
  word: str
  target_fn: Callable[[Sequence[str]], str]
  labels: tuple = ()


def _majority(words):
  animals = sum(w in ANIMALS for w in words)
  return "animal" if 2 * animals > len(words) else "color"


TASKS = {
    "first": SyntheticTask("first", lambda w: w[0]),
    "last": SyntheticTask("last", lambda w: w[-1]),
    "count": SyntheticTask("count", lambda w: NUMBER_WORDS[len(w)],
                           tuple(NUMBER_WORDS.values())),
    "majority": SyntheticTask("majority", _majority, ("animal", "color")),
    "has_cat": SyntheticTask("has_cat", lambda w: "yes" if "cat" in w else "no",
                             ("no", "yes")),
}


def _sample_words(rng: random.Random, lengths: Sequence[int] = LENGTHS) -> tuple:
  return tuple(rng.choice(WORDS) for _ in range(rng.choice(lengths)))


@functools.lru_cache(maxsize=None)
def split_inputs(split: str, lengths: tuple = LENGTHS) -> tuple:
  """The word sequences of a split (shared by all tasks; held-out filtered).

  Other `lengths` than the pretraining's give a variant's inputs (derived tasks
  such as `taskless_demo_majority_long`), from their own seeds.
  """
  if split not in SPLIT_SIZES:
    raise ValueError(f"synthetic split {split!r}; expected one of {sorted(SPLIT_SIZES)}.")
  lengths = tuple(int(n) for n in lengths)
  if not lengths or min(lengths) < 1 or any(n % 2 == 0 for n in lengths):
    raise ValueError(f"input lengths {lengths}; expected odd lengths >= 1 (majority never "
                     "ties).")
  rng = random.Random(_SPLIT_SEEDS[split] if lengths == LENGTHS else f"{split}:{lengths}")
  seen = set(split_inputs("train", lengths)) if split != "train" else set()
  out = []
  while len(out) < SPLIT_SIZES[split]:
    words = _sample_words(rng, lengths)
    if words not in seen:
      out.append(words)
  return tuple(out)


def examples(task_name: str, split: str, with_task_word: bool = True,
             lengths: tuple = LENGTHS) -> Iterator[dict]:
  """Yields {"inputs": str, "targets": str} for one task and split.

  `lengths`: the input lengths in words (the pretraining's by default).
  """
  if task_name not in TASKS:
    raise ValueError(f"unknown synthetic task {task_name!r}; expected one of "
                     f"{sorted(TASKS)}.")
  task = TASKS[task_name]
  if task_name == "count" and not set(lengths) <= set(NUMBER_WORDS):
    raise ValueError(f"count has words for lengths {sorted(NUMBER_WORDS)}; got {lengths}.")
  for words in split_inputs(split, tuple(lengths)):
    text = " ".join(words)
    yield {"inputs": f"{task.word}: {text}" if with_task_word else text,
           "targets": task.target_fn(words)}


def corpus() -> Iterator[str]:
  """Every string the tasks can produce: the text the demo vocabulary learns."""
  for name in TASKS:
    for ex in examples(name, "train"):
      yield ex["inputs"]
      yield ex["targets"]
