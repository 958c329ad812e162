"""Evaluation with seqio.Evaluator semantics.

`Evaluator` wraps `seqio.Evaluator`: the validation split is preprocessed and
cached once; each call decodes it greedily with the current prompt (for the
task's `metric_fns`, after its `postprocess_fn`) and scores the targets (for
its `score_metric_fns`, e.g. rank classification), exactly as T5X's
`infer_eval` does. It also reports the teacher-forced validation loss.
"""
import math
import os
from typing import Any, Mapping, Optional

import jax
import numpy as np
import seqio

from prompt_tuning import tree
from prompt_tuning.models import Transformer, decoding, scoring
from prompt_tuning import losses
from prompt_tuning.data import inputs

Params = Any


def _scalar(value) -> Optional[float]:
  """A seqio metric value (float, numpy, seqio Scalar) -> float, else None."""
  value = getattr(value, "value", value)
  try:
    out = float(np.asarray(value))
  except (TypeError, ValueError):
    return None
  return out


def _batches(ds, batch_size: int, prompt_id: Optional[int] = None):
  """(index, features) examples -> padded [B, ...] numpy batches + real count.

  With `prompt_id`, every batch also carries `prompt_ids` [B] = prompt_id.
  """
  for indices, features in ds.batch(batch_size).as_numpy_iterator():
    n = len(indices)
    pad = batch_size - n
    batch = {k: np.pad(features[k], [(0, pad)] + [(0, 0)] * (features[k].ndim - 1))
             for k in inputs.MODEL_FEATURES}
    if prompt_id is not None:
      batch["prompt_ids"] = np.full((batch_size,), prompt_id, np.int32)
    yield indices, batch, n


class Evaluator:
  """Metrics of a (prompt, frozen model) on a task's validation split.

  Args:
    model: the `Transformer` (its prompt specs say what the prompts are).
    mixture_or_task_name: a seqio task or mixture with metric functions.
    task_feature_lengths: {"inputs": L, "targets": T}; decoding runs T steps.
    batch_size: examples per decode call (the last batch is padded, so the
      decode function compiles once).
    split: the split to evaluate.
    num_examples: evaluate only the first N examples (None: all).
    log_dir: if set, seqio's JSONLogger writes predictions and metrics there.
  """

  def __init__(self, model: Transformer, mixture_or_task_name: str,
               task_feature_lengths: Mapping[str, int], batch_size: int,
               split: str = "validation", num_examples: Optional[int] = None,
               log_dir: Optional[str] = None, loss_cfg: Optional[losses.LossConfig] = None):
    inputs.keep_tf_off_accelerators()
    task = inputs.get_task(mixture_or_task_name)
    subtasks = seqio.get_subtasks(task)
    self.model = model
    self.batch_size = int(batch_size)
    self.split = split
    self.target_length = int(inputs.check_feature_lengths(task_feature_lengths)["targets"])
    # Vocabularies need not be hashable; their EOS ids must agree.
    eos_ids = {t.output_features["targets"].vocabulary.eos_id for t in subtasks}
    if len(eos_ids) > 1:
      raise ValueError(f"{mixture_or_task_name}: sub-tasks use different EOS ids "
                       f"{sorted(eos_ids)}; expected one.")
    self.eos_id = eos_ids.pop() if eos_ids else 1
    if log_dir:
      os.makedirs(log_dir, exist_ok=True)  # seqio's JSONLogger expects it
    self._seqio = seqio.Evaluator(
        mixture_or_task_name, seqio.EncDecFeatureConverter(pack=False), eval_split=split,
        sequence_length=dict(task_feature_lengths), num_examples=num_examples,
        use_memory_cache=True, async_compute_metrics=False,
        logger_cls=(seqio.JSONLogger,) if log_dir else (), log_dir=log_dir)
    self.task_names = [t.name for t in self._seqio.eval_tasks]
    self._decode = jax.jit(lambda params, tokens, ids: decoding.greedy_decode(
        model, params, tokens, max_decode_length=self.target_length, eos_id=self.eos_id,
        prompt_ids=ids))
    self._score = jax.jit(lambda params, batch: scoring.score(model, params, batch))
    self._loss = losses.jit_eval_step(model, loss_cfg or losses.LossConfig())

  @property
  def has_tasks(self) -> bool:
    return bool(self.task_names)

  def _predict_fn(self, params, prompt_id):
    def predict(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size, prompt_id):
        tokens = np.asarray(self._decode(params, batch["encoder_input_tokens"],
                                         batch.get("prompt_ids")))
        # Fixed-length rows (seqio stacks them); vocabulary.decode stops at EOS.
        out += [(int(i), t) for i, t in zip(indices, tokens[:n])]
      return out
    return predict

  def _score_fn(self, params, prompt_id):
    def score(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size, prompt_id):
        scores = np.asarray(self._score(params, batch))
        out += [(int(i), float(s)) for i, s in zip(indices, scores[:n])]
      return out
    return score

  def evaluate(self, trainable: Params, frozen: Params, step: int,
               prompt_id: Optional[int] = None) -> dict[str, float]:
    """Runs every eval task with the given prompt(s).

    Args:
      trainable, frozen: the two halves of the params.
      step: recorded with seqio's logs.
      prompt_id: with a prompt bank, the prompt every example uses.

    Returns:
      {"<task>/<metric>": value} plus `<task>/loss_per_token` and
      `<task>/token_accuracy` (teacher-forced).
    """
    if self.model.num_prompts > 1 and prompt_id is None:
      raise ValueError(f"the model's prompt bank holds {self.model.num_prompts} prompts; "
                       "expected the prompt_id to evaluate.")
    params = tree.merge(trainable, frozen)
    metrics_future, _ = self._seqio.evaluate(
        compute_metrics=True, step=int(step), predict_fn=self._predict_fn(params, prompt_id),
        score_fn=self._score_fn(params, prompt_id))
    results = {}
    for task, values in (metrics_future.result() or {}).items():
      for name, value in values.items():
        scalar = _scalar(value)
        if scalar is not None:
          results[f"{task}/{name}"] = scalar
    for task in self.task_names:
      sums: dict = {}
      for _, batch, n in _batches(self._seqio.cached_model_datasets[task], self.batch_size,
                                  prompt_id):
        batch["decoder_loss_weights"][n:] = 0  # padded rows carry no weight
        for k, v in self._loss(trainable, frozen, batch).items():
          sums[k] = sums.get(k, 0.0) + float(v)
      tokens = max(sums.get("num_tokens", 0.0), 1.0)
      results[f"{task}/loss_per_token"] = sums.get("cross_entropy", math.nan) / tokens
      results[f"{task}/token_accuracy"] = 100.0 * sums.get("accuracy", 0.0) / tokens
    return results
