"""Evaluation with seqio.Evaluator semantics, and `prompt-tuning eval`.

`Evaluator` wraps `seqio.Evaluator`: the validation split is preprocessed and
cached once; each call decodes it greedily with the current prompt (for the
task's `metric_fns`, after its `postprocess_fn`) and scores the targets (for
its `score_metric_fns`, e.g. rank classification), exactly as T5X's
`infer_eval` does. It also reports the teacher-forced validation loss.

`main(argv)` evaluates a saved prompt: the same gin files as training plus
EVAL_CHECKPOINT ("best", "latest", a step, or a `.npy` prompt file).
"""
import json
import math
import os
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
import seqio

from prompt_tuning.models import Transformer
from prompt_tuning.train import inputs, partition, step as step_lib

Params = Any


def _scalar(value) -> Optional[float]:
  """A seqio metric value (float, numpy, seqio Scalar) -> float, else None."""
  value = getattr(value, "value", value)
  try:
    out = float(np.asarray(value))
  except (TypeError, ValueError):
    return None
  return out


def _batches(ds, batch_size: int):
  """(index, features) examples -> padded [B, ...] numpy batches + real count."""
  for indices, features in ds.batch(batch_size).as_numpy_iterator():
    n = len(indices)
    pad = batch_size - n
    batch = {k: np.pad(features[k], [(0, pad)] + [(0, 0)] * (features[k].ndim - 1))
             for k in inputs.MODEL_FEATURES}
    yield indices, batch, n


class Evaluator:
  """Metrics of a (prompt, frozen model) on a task's validation split.

  Args:
    model: the `Transformer` (its config includes the prompt).
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
               log_dir: Optional[str] = None, loss_cfg: Optional[step_lib.LossConfig] = None):
    from prompt_tuning.models import decoding  # pylint: disable=import-outside-toplevel
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
    self._seqio = seqio.Evaluator(
        mixture_or_task_name, seqio.EncDecFeatureConverter(pack=False), eval_split=split,
        sequence_length=dict(task_feature_lengths), num_examples=num_examples,
        use_memory_cache=True, async_compute_metrics=False,
        logger_cls=(seqio.JSONLogger,) if log_dir else (), log_dir=log_dir)
    self.task_names = [t.name for t in self._seqio.eval_tasks]
    self._decode = jax.jit(lambda params, tokens: decoding.greedy_decode(
        model, params, tokens, max_decode_length=self.target_length, eos_id=self.eos_id))
    self._score = jax.jit(lambda params, batch: decoding.score(model, params, batch))
    self._loss = step_lib.jit_eval_step(model, loss_cfg or step_lib.LossConfig())

  @property
  def has_tasks(self) -> bool:
    return bool(self.task_names)

  def _predict_fn(self, params):
    def predict(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size):
        tokens = np.asarray(self._decode(params, batch["encoder_input_tokens"]))
        # Fixed-length rows (seqio stacks them); vocabulary.decode stops at EOS.
        out += [(int(i), t) for i, t in zip(indices, tokens[:n])]
      return out
    return predict

  def _score_fn(self, params):
    def score(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size):
        scores = np.asarray(self._score(params, batch))
        out += [(int(i), float(s)) for i, s in zip(indices, scores[:n])]
      return out
    return score

  def evaluate(self, trainable: Params, frozen: Params, step: int) -> dict[str, float]:
    """Runs every eval task; returns {"<task>/<metric>": value} plus `<task>/loss`."""
    params = partition.merge(trainable, frozen)
    metrics_future, _ = self._seqio.evaluate(
        compute_metrics=True, step=int(step), predict_fn=self._predict_fn(params),
        score_fn=self._score_fn(params))
    results = {}
    for task, values in (metrics_future.result() or {}).items():
      for name, value in values.items():
        scalar = _scalar(value)
        if scalar is not None:
          results[f"{task}/{name}"] = scalar
    for task in self.task_names:
      sums: dict = {}
      for _, batch, n in _batches(self._seqio.cached_model_datasets[task], self.batch_size):
        batch["decoder_loss_weights"][n:] = 0  # padded rows carry no weight
        for k, v in self._loss(trainable, frozen, batch).items():
          sums[k] = sums.get(k, 0.0) + float(v)
      tokens = max(sums.get("num_tokens", 0.0), 1.0)
      results[f"{task}/loss_per_token"] = sums.get("cross_entropy", math.nan) / tokens
      results[f"{task}/token_accuracy"] = 100.0 * sums.get("accuracy", 0.0) / tokens
    return results


def resolve_metric(results: Mapping[str, float], metric: Optional[str],
                   task_names) -> str:
  """The key of the metric that selects the best checkpoint.

  `metric` may be "<task>/<name>" or just "<name>" (with one eval task); None
  takes the first metric the task's metric functions reported.

  Raises:
    ValueError: the metric is not among the reported ones (they are listed).
  """
  derived = ("loss_per_token", "token_accuracy")
  if metric is None:
    for key in results:
      if key.split("/", 1)[1] not in derived:
        return key
    return next(iter(results))
  if metric in results:
    return metric
  candidates = [f"{t}/{metric}" for t in task_names if f"{t}/{metric}" in results]
  if len(candidates) == 1:
    return candidates[0]
  raise ValueError(f"EVAL_METRIC={metric!r} is not one of the reported metrics "
                   f"{sorted(results)}; give '<task>/<metric>' for a mixture.")


def is_better(value: float, best: Optional[float], mode: str) -> bool:
  if mode not in ("max", "min"):
    raise ValueError(f"eval_metric_mode={mode!r}; expected 'max' or 'min'.")
  if value is None or not math.isfinite(value):
    return False
  return best is None or (value > best if mode == "max" else value < best)


def write_json(path: str, payload: Mapping) -> None:
  """Writes JSON atomically (temp file + rename)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def main(argv=None) -> int:
  """`prompt-tuning eval`: see `prompt_tuning.train.main.main_eval`."""
  from prompt_tuning.train import main as main_lib  # pylint: disable=import-outside-toplevel
  return main_lib.main_eval(argv)


if __name__ == "__main__":
  raise SystemExit(main())
