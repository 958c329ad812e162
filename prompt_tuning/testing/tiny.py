"""Tiny, offline fixtures for tests, smoke configs and notebooks (no downloads).

- `WordVocabulary`: a seqio vocabulary over a fixed word list (pad 0, EOS 1),
  small enough for the tiny model's 64-row embedding table.
- `register_tiny_task()`: an in-memory seqio task, "tiny_majority_v1": the
  demo's synthetic "majority" task without its task word (3-7 color/animal
  words; is the majority "animal" or "color"?), scored by exact-match accuracy.
- `write_tiny_checkpoint()`: a randomly initialised tiny T5 1.1 saved as a
  Hugging Face directory, so it loads through `prompt_tuning.checkpoints.load`
  like any real INITIAL_CHECKPOINT_PATH.

Registration is an explicit call (idempotent), never an import side effect.
"""
import functools
import itertools
import os
from typing import Optional, Sequence

import jax
import numpy as np
import seqio
import tensorflow as tf

from prompt_tuning.demo import synthetic
from prompt_tuning.models import get_config, init_params

LABELS = synthetic.TASKS["majority"].labels  # ("animal", "color")
WORDS = ("</s>",) + LABELS + synthetic.COLORS + synthetic.ANIMALS  # id = index + 1 (0 pads)
TINY_TASK = "tiny_majority_v1"


class WordVocabulary(seqio.UnigramVocabulary):
  """Space-separated words -> ids; id 0 pads, id 1 is EOS, unknown words -> UNK."""

  def __init__(self, words: Sequence[str] = WORDS):
    if words[0] != "</s>":
      raise ValueError("WordVocabulary: the first word must be '</s>' (EOS id 1).")
    super().__init__(list(words), split_on_space=True)
    self._words = tuple(words)

  @property
  def eos_id(self):
    return 1

  def _decode(self, ids) -> str:
    return " ".join(self._unigram_by_id[i] for i in ids if i > 1)

  def _decode_tf(self, ids):
    ids = tf.boolean_mask(ids, ids > 1)
    return tf.strings.reduce_join(tf.gather(self._unigram_by_id_tf, ids), separator=" ")

  def __eq__(self, other):
    return isinstance(other, WordVocabulary) and other._words == self._words

  def __hash__(self):
    return hash(self._words)


def majority_examples(n: int, split: str) -> dict:
  """The first n taskless "majority" examples of a synthetic split, as columns."""
  rows = list(itertools.islice(synthetic.examples("majority", split, with_task_word=False), n))
  if len(rows) < n:
    raise ValueError(f"majority_examples: the synthetic {split} split has {len(rows)} "
                     f"examples; asked for {n}.")
  return {"inputs": [r["inputs"] for r in rows], "targets": [r["targets"] for r in rows]}


def accuracy(targets, predictions) -> dict:
  """Exact-match accuracy in percent (seqio metric_fn convention)."""
  return {"accuracy": 100.0 * float(np.mean([t == p for t, p in zip(targets, predictions)]))}


def mean_target_score(targets, scores) -> dict:
  """Mean log-likelihood of the targets (a seqio score metric), and the first and
  last example's, which show whether scores come back in example order."""
  del targets
  return {"mean_target_score": float(np.mean(scores)),
          "first_target_score": float(scores[0]), "last_target_score": float(scores[-1])}


def register_tiny_task(name: str = TINY_TASK, sizes: Optional[dict] = None,
                       with_score_metric: bool = False) -> str:
  """Registers the in-memory majority task (once) and returns its name."""
  if name in seqio.TaskRegistry.names():
    return name
  sizes = sizes or {"train": 512, "validation": 32}
  data = {split: majority_examples(n, split) for split, n in sizes.items()}

  def dataset_fn(split, shuffle_files, seed=None):
    del shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices(data[split])

  vocab = WordVocabulary()
  seqio.TaskRegistry.add(
      name,
      source=seqio.FunctionDataSource(dataset_fn, splits=list(sizes)),
      preprocessors=[seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                     seqio.preprocessors.append_eos_after_trim],
      output_features={k: seqio.Feature(vocab, add_eos=True) for k in ("inputs", "targets")},
      # seqio tells prediction metrics from score metrics by their argument names.
      metric_fns=[accuracy] + ([mean_target_score] if with_score_metric else []))
  return name


def tiny_config(**overrides):
  """The tiny T5 1.1 (d_model 16, 2 + 2 layers, vocab 64) without dropout by default."""
  return get_config("tiny", **{"dropout_rate": 0.0, **overrides})


@functools.lru_cache(maxsize=None)
def _tiny_params(seed: int):
  return jax.device_get(init_params(tiny_config(), jax.random.PRNGKey(seed)))


def write_tiny_checkpoint(directory: str, seed: int = 0) -> str:
  """Writes random tiny-T5 params as a Hugging Face dir; returns `directory`."""
  from prompt_tuning import checkpoints  # pylint: disable=import-outside-toplevel
  if not os.path.exists(os.path.join(directory, "config.json")):
    checkpoints.save_hf(tiny_config(), _tiny_params(seed), directory)
  return directory
