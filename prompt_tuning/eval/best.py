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


MEAN_PREFIX = "mean"


def add_task_mean(results: dict, task_names) -> Optional[str]:
  """Adds "mean/<metric>": the tasks' mean of the first metric every task reports.

  A multi-task run selects its best prompts by the tasks' mean (not by its
  first task alone). Returns the key added, or None when no metric is shared.
  """
  per_task = [[k.split("/", 1)[1] for k in results if k.startswith(f"{t}/")
               and k.split("/", 1)[1] not in DERIVED] for t in task_names]
  shared = [m for m in (per_task[0] if per_task else []) if all(m in p for p in per_task)]
  if not shared:
    return None
  key = f"{MEAN_PREFIX}/{shared[0]}"
  results[key] = sum(results[f"{t}/{shared[0]}"] for t in task_names) / len(task_names)
  return key


def is_better(value: float, best: Optional[float], mode: str) -> bool:
  """Whether `value` beats `best` (None: nothing yet) in `mode`; NaN never does."""
  if mode not in MODES:
    raise ValueError(f"eval_metric_mode={mode!r}; expected 'max' or 'min'.")
  if value is None or not math.isfinite(value):
    return False
  return best is None or (value > best if mode == "max" else value < best)
