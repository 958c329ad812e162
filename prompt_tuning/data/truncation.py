"""How many examples TASK_FEATURE_LENGTHS cuts short.

seqio trims every feature to its length without a word (the task's
`append_eos_after_trim` keeps the EOS as the last token). `measure_truncation`
counts, per feature, the examples whose tokens (EOS included) do not fit, and
logs a warning when any do; `prompt-tuning show-tasks` reports it.
"""
import dataclasses
import logging
from typing import Mapping, Optional, Union

import numpy as np
import seqio


@dataclasses.dataclass(frozen=True)
class TruncationReport:
  """Per-feature truncation counts of one split of one task.

  Attributes:
    task: the task name.
    split: the split measured.
    lengths: TASK_FEATURE_LENGTHS, e.g. {"inputs": 512, "targets": 16}.
    examples: examples measured.
    truncated: feature -> examples longer than its length.
    longest: feature -> the longest example's token count (EOS included).
  """
  task: str
  split: str
  lengths: Mapping[str, int]
  examples: int
  truncated: Mapping[str, int]
  longest: Mapping[str, int]

  def rate(self, feature: str) -> float:
    """% of the examples whose `feature` is truncated."""
    return 100.0 * self.truncated[feature] / self.examples if self.examples else 0.0

  def summary(self) -> str:
    parts = [f"{k} {self.truncated[k]} ({self.rate(k):.1f}%, longest {self.longest[k]} > "
             f"{self.lengths[k]})" if self.truncated[k] else
             f"{k} 0 (longest {self.longest[k]} <= {self.lengths[k]})" for k in self.lengths]
    return (f"{self.task}/{self.split}: truncated over {self.examples} examples: "
            + "; ".join(parts))


def measure_truncation(task: Union[str, seqio.Task], task_feature_lengths: Mapping[str, int],
                       split: str = "validation", num_examples: Optional[int] = None,
                       warn: bool = True) -> TruncationReport:
  """Counts the examples of a task that TASK_FEATURE_LENGTHS truncates.

  Args:
    task: a seqio Task or its registered name (for a mixture, measure each of
      `seqio.get_subtasks(mixture)`).
    task_feature_lengths: {"inputs": L, "targets": T}, token counts with EOS.
    split: the split to read (in order, unshuffled).
    num_examples: measure the first N examples only (None: the whole split).
    warn: log a warning naming the task when anything is truncated.

  Returns:
    The report.

  Raises:
    ValueError: a mixture, an unknown split, or lengths that are not positive
      ints for the task's features.
  """
  task = seqio.get_mixture_or_task(task) if isinstance(task, str) else task
  if not isinstance(task, seqio.Task):
    raise ValueError(f"{task.name} is a mixture; measure its tasks "
                     f"{[t.name for t in seqio.get_subtasks(task)]} one by one.")
  if split not in task.splits:
    raise ValueError(f"{task.name} has no split {split!r}; expected one of {list(task.splits)}.")
  lengths = dict(task_feature_lengths)
  bad = {k: v for k, v in lengths.items()
         if k not in task.output_features or not isinstance(v, int) or v <= 0}
  if bad or not lengths:
    raise ValueError(f"TASK_FEATURE_LENGTHS={task_feature_lengths!r}; expected positive ints "
                     f"for features of {task.name}: {sorted(task.output_features)}.")
  ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
  if num_examples is not None:
    ds = ds.take(num_examples)
  counts = {k: [] for k in lengths}
  for example in ds.as_numpy_iterator():
    for k in lengths:
      counts[k].append(len(example[k]))
  report = TruncationReport(
      task=task.name, split=split, lengths=lengths, examples=len(counts[next(iter(lengths))]),
      truncated={k: int(np.sum(np.asarray(v) > lengths[k])) for k, v in counts.items()},
      longest={k: int(max(v, default=0)) for k, v in counts.items()})
  if warn and any(report.truncated.values()):
    logging.warning("%s (seqio trims to TASK_FEATURE_LENGTHS, keeping EOS last).",
                    report.summary())
  return report
