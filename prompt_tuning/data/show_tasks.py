"""Listing registered tasks and printing a task's examples (`prompt-tuning show-tasks`).

`list_tasks(filter)` prints task and mixture names containing the filter, with
their splits and label words; `show_task(name, ...)` prints preprocessed
examples of a split (input and target text, token counts with EOS, the other
fields), the verbalizer and metrics, and how many examples the lengths
(TASK_FEATURE_LENGTHS) truncate. The command is prompt_tuning.cli.show_tasks.
"""
import difflib
import sys
from typing import Optional

import numpy as np


def _labels(name: str) -> str:
  from prompt_tuning.data import tasks, verbalizers  # pylint: disable=import-outside-toplevel
  try:
    spec = tasks.get_spec(name)
  except ValueError:
    return ""
  if spec.label_space:
    return " | ".join(verbalizers.get_verbalizer(spec.label_space).labels)
  return f"({spec.kind}: free text)"


def list_tasks(pattern: str, out=None) -> int:
  """Prints registered tasks and mixtures whose name contains `pattern`."""
  out = out or sys.stdout
  import seqio  # pylint: disable=import-outside-toplevel
  task_list = sorted(n for n in seqio.TaskRegistry.names() if pattern in n)
  mixtures = sorted(n for n in seqio.MixtureRegistry.names() if pattern in n)
  if not task_list and not mixtures:
    print(f"show-tasks: no registered task or mixture contains {pattern!r}.", file=out)
    return 1
  width = max(len(n) for n in task_list + mixtures)
  for name in task_list:
    splits = ",".join(seqio.get_mixture_or_task(name).splits)
    print(f"task     {name:<{width}}  {splits:<24} {_labels(name)}", file=out)
  for name in mixtures:
    members = [t.name for t in seqio.get_mixture_or_task(name).tasks]
    print(f"mixture  {name:<{width}}  {len(members)} tasks: {', '.join(members)}", file=out)
  print(f"{len(task_list)} tasks, {len(mixtures)} mixtures", file=out)
  return 0


def _text(value) -> str:
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def show_task(name: str, split: Optional[str], num_examples: int, lengths: dict,
              scan: Optional[int], out=None) -> int:
  """Prints `num_examples` preprocessed examples of one task and its truncation counts."""
  out = out or sys.stdout
  import seqio  # pylint: disable=import-outside-toplevel
  from prompt_tuning.data import tasks, truncation  # pylint: disable=import-outside-toplevel
  if name not in seqio.TaskRegistry.names():
    close = difflib.get_close_matches(name, list(seqio.TaskRegistry.names()), n=5, cutoff=0.5)
    print(f"show-tasks: no task {name!r}; closest: {close}.", file=out)
    return 2
  task = seqio.get_mixture_or_task(name)
  splits = list(task.splits)
  split = split or ("validation" if "validation" in splits else splits[0])
  if split not in splits:
    print(f"show-tasks: {name} has no split {split!r}; expected one of {splits}.", file=out)
    return 2
  print(f"task: {name}  split: {split}  splits: {', '.join(splits)}", file=out)
  try:
    spec = tasks.get_spec(name)
    print(f"source: {spec.tfds_name}  kind: {spec.kind}", file=out)
    if spec.label_space:
      from prompt_tuning.data import verbalizers  # pylint: disable=import-outside-toplevel
      words = verbalizers.get_verbalizer(spec.label_space).labels
      print(f"verbalizer ({spec.label_space}): "
            + "  ".join(f"{i}={w!r}" for i, w in enumerate(words)), file=out)
  except ValueError:
    pass
  metric_names = [getattr(f, "__name__", repr(f)) for f in task.metric_fns]
  print(f"metrics: {', '.join(metric_names) or '(none)'}", file=out)
  try:
    ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
    for i, ex in enumerate(ds.take(num_examples).as_numpy_iterator()):
      print(f"--- example {i} ---", file=out)
      for feature in ("inputs", "targets"):
        print(f"{feature} ({len(ex[feature])} tokens): {_text(ex[feature + '_pretokenized'])}",
              file=out)
      rest = {k: v for k, v in ex.items()
              if k not in ("inputs", "targets", "inputs_pretokenized", "targets_pretokenized")}
      if rest:
        print("fields: " + "  ".join(
            f"{k}={[_text(x) for x in v] if isinstance(v, np.ndarray) and v.ndim else _text(v)}"
            for k, v in sorted(rest.items())), file=out)
    count = num_examples if scan is None else (None if scan == 0 else scan)
    report = truncation.measure_truncation(task, lengths, split, num_examples=count)
  except Exception as e:  # pylint: disable=broad-except
    print(f"show-tasks: could not read {name} ({split}): {type(e).__name__}: {e}\n"
          "Is the TFDS data prepared (--tfds_data_dir), and is --vocabulary readable here?",
          file=out)
    return 1
  print(f"--- TASK_FEATURE_LENGTHS {lengths}", file=out)
  print(report.summary(), file=out)
  return 0
