"""seqio tasks over the synthetic data, and the demo vocabulary.

Names: `demo_<task>` (input starts with the task word, as in pretraining) and
`taskless_demo_<task>` (task word removed: the paper's setting); the mixture
`demo_pretrain` holds every `demo_<task>` at equal rates, `taskless_demo_mixture`
every `taskless_demo_<task>` (a multi-task run's: runs/demo_multitask.gin).
`register_variant` adds a derived task, e.g. `taskless_demo_majority_long` (majority on
9- and 11-word inputs, which the demo model never saw), the related target of
benchmarks/spot.py.
"""
import functools
import os

import seqio
import tensorflow as tf

from prompt_tuning import paths
from prompt_tuning.demo import synthetic

PRETRAIN_MIXTURE = "demo_pretrain"
TASKLESS_MIXTURE = "taskless_demo_mixture"


def demo_vocabulary(model_dir: str = "") -> seqio.SentencePieceVocabulary:
  """The demo model's SentencePiece vocabulary (`spiece.model` in its HF dir)."""
  path = os.path.join(model_dir or paths.demo_model_dir(), "spiece.model")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found; expected the demo model's vocabulary "
                            "(rebuild it with python -m prompt_tuning.demo.pretrain).")
  return seqio.SentencePieceVocabulary(path)


def task_name(name: str, taskless: bool = False) -> str:
  return f"{'taskless_' if taskless else ''}demo_{name}"


def _dataset_fn(split: str, shuffle_files: bool = False, seed=None, *, name: str,
                with_task_word: bool, lengths: tuple = synthetic.LENGTHS) -> tf.data.Dataset:
  del shuffle_files, seed  # in-memory data; seqio shuffles examples itself
  rows = list(synthetic.examples(name, split, with_task_word, lengths))
  return tf.data.Dataset.from_tensor_slices({
      "inputs": [r["inputs"] for r in rows],
      "targets": [r["targets"] for r in rows],
  })


def _metric_fns(name: str):
  """Exact-match accuracy; for classification also the illegal-label rate."""
  labels = synthetic.TASKS[name].labels

  def accuracy(targets, predictions):
    if len(targets) != len(predictions) or not targets:
      raise ValueError(f"demo {name}: {len(targets)} targets vs "
                       f"{len(predictions)} predictions; expected equal and > 0.")
    correct = sum(t == p for t, p in zip(targets, predictions))
    out = {"accuracy": 100.0 * correct / len(targets)}
    if labels:
      out["illegal_label_rate"] = 100.0 * sum(p not in labels for p in predictions) / len(
          predictions)
    return out
  return [accuracy]


def register_demo_tasks(vocabulary: seqio.Vocabulary) -> list[str]:
  """(Re-)registers every demo task, `taskless_demo_majority_long`, and the mixture.

  Args:
    vocabulary: the vocabulary of the demo model (inputs and targets).

  Returns:
    The registered task names.
  """
  names = []
  for name in synthetic.TASKS:
    for taskless in (False, True):
      names.append(_register(task_name(name, taskless), name, vocabulary,
                             with_task_word=not taskless))
  names.append(register_variant(vocabulary))  # in neither mixture
  for mixture, taskless in ((PRETRAIN_MIXTURE, False), (TASKLESS_MIXTURE, True)):
    seqio.MixtureRegistry.remove(mixture)
    seqio.MixtureRegistry.add(mixture, [task_name(n, taskless) for n in synthetic.TASKS],
                              default_rate=1.0)
  return names


def _register(full: str, name: str, vocabulary: seqio.Vocabulary, *, with_task_word: bool,
              lengths: tuple = synthetic.LENGTHS) -> str:
  features = {
      "inputs": seqio.Feature(vocabulary, add_eos=True),
      "targets": seqio.Feature(vocabulary, add_eos=True),
  }
  seqio.TaskRegistry.remove(full)
  seqio.TaskRegistry.add(
      full,
      source=seqio.FunctionDataSource(
          functools.partial(_dataset_fn, name=name, with_task_word=with_task_word,
                            lengths=tuple(lengths)),
          splits=tuple(synthetic.SPLIT_SIZES)),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
      output_features=features,
      postprocess_fn=None,
      metric_fns=_metric_fns(name))
  return full


def register_variant(vocabulary: seqio.Vocabulary, name: str = "majority",
                     lengths: tuple = (9, 11), suffix: str = "long") -> str:
  """(Re-)registers `taskless_demo_<name>_<suffix>`: a demo task on other input lengths.

  Not part of the demo model's pretraining (synthetic.TASKS is unchanged); its
  splits are drawn from their own seeds, held-out inputs unseen in its train split.

  Returns:
    The task's name.
  """
  return _register(f"{task_name(name, True)}_{suffix}", name, vocabulary,
                   with_task_word=False, lengths=tuple(lengths))
