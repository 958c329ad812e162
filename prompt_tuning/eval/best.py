"""Which evaluation is the best one: the metric that decides, and in which direction.

The paper keeps the prompt that scores best on the validation split (early
stopping); T5X calls this the checkpoint-selection metric. `resolve_metric`
names the reported metric that decides (EVAL_METRIC), `is_better` compares in
EVAL_METRIC_MODE ("max" for accuracy-like metrics, "min" for losses).
"""
import math
from typing import Mapping, Optional

MODES = ("max", "min")
# Metrics the evaluator derives for every task; never the default decider.
DERIVED = ("loss_per_token", "token_accuracy")


def resolve_metric(results: Mapping[str, float], metric: Optional[str],
                   task_names) -> str:
  """The key of the metric that selects the best checkpoint.

  `metric` may be "<task>/<name>" or just "<name>" (with one eval task); None
  takes the first metric the task's metric functions reported.

  Raises:
    ValueError: the metric is not among the reported ones (they are listed).
  """
  if metric is None:
    for key in results:
      if key.split("/", 1)[1] not in DERIVED:
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
  """Whether `value` beats `best` (None: nothing yet) in `mode`; NaN never does."""
  if mode not in MODES:
    raise ValueError(f"eval_metric_mode={mode!r}; expected 'max' or 'min'.")
  if value is None or not math.isfinite(value):
    return False
  return best is None or (value > best if mode == "max" else value < best)
