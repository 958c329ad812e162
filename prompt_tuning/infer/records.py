"""What `prompt-tuning infer` reads: one record per input, from a file or a task split.

  JSONL  one object per line: the input text under "inputs" (or "input", "text"),
         optionally the prompt it uses under "prompt" (a name in the prompt
         bank) or "task" (a task name, which also names its prompt and its
         label words), and a "targets" (or "target") to carry along.
  TSV    one input per line; an optional second column names the prompt.
  task   a registered seqio task's split, preprocessed as for evaluation
         (`inputs_pretokenized`, `targets_pretokenized`); each record's prompt is
         the task's name.
"""
import dataclasses
import json
import os
from typing import Iterator, Optional

import numpy as np


@dataclasses.dataclass
class Record:
  """One input to run.

  Attributes:
    input: the input text (what the frozen model reads after the prompt).
    prompt: the bank member it uses (None: the only prompt).
    task: a registered task it belongs to (label words, postprocessing).
    target: a reference answer, carried into the output.
    ids: the input's token ids when they come from a task (EOS included).
    line: where it came from, for messages ("file:line" or "task[i]").
  """
  input: str
  prompt: Optional[str] = None
  task: Optional[str] = None
  target: Optional[str] = None
  ids: Optional[np.ndarray] = None
  line: str = ""


def _first(obj: dict, keys, where: str, required: bool = True) -> Optional[str]:
  for key in keys:
    if key in obj:
      value = obj[key]
      if not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} is {type(value).__name__}; expected a string.")
      return value
  if required:
    raise ValueError(f"{where}: no input text; expected one of the keys {list(keys)} "
                     f"(found {sorted(obj)}).")
  return None


def read_file(path: str) -> list[Record]:
  """Records of a `.jsonl` (or `.json` lines) or `.tsv` / `.txt` file (see module doc).

  Raises:
    ValueError: a missing or empty file, or a line that is not what was expected (named).
  """
  if not os.path.isfile(path):
    raise ValueError(f"INFER_INPUT_FILE={path!r}: no such file; expected a .jsonl or .tsv file "
                     "of inputs.")
  records = []
  with open(path, encoding="utf-8") as f:
    jsonl = path.endswith((".jsonl", ".json"))
    for number, line in enumerate(f, start=1):
      where = f"{path}:{number}"
      if not line.strip():
        continue
      if jsonl:
        try:
          obj = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f"{where}: not valid JSON ({e}); expected one object per line.") from e
        if not isinstance(obj, dict):
          raise ValueError(f"{where}: a JSON {type(obj).__name__}; expected an object.")
        task = _first(obj, ("task",), where, required=False)
        records.append(Record(
            input=_first(obj, ("inputs", "input", "text"), where),
            prompt=_first(obj, ("prompt",), where, required=False) or task, task=task,
            target=_first(obj, ("targets", "target"), where, required=False), line=where))
      else:
        columns = line.rstrip("\n").split("\t")
        records.append(Record(input=columns[0], prompt=columns[1] if len(columns) > 1 and
                              columns[1] else None, line=where))
  if not records:
    raise ValueError(f"INFER_INPUT_FILE={path!r} holds no inputs; expected at least one line.")
  return records


def read_task(name: str, split: str, sequence_length: dict,
              num_examples: Optional[int] = None) -> Iterator[Record]:
  """Records of a registered task's split (its text and its token ids).

  A mixture yields each sub-task's records in turn (the first `num_examples`
  of each), every record naming its own task, so a bank of per-task prompts
  (a multi-task run's MODEL_DIR/tasks/) serves each with its task's prompt.
  """
  import seqio  # pylint: disable=import-outside-toplevel
  text = lambda x: x.decode("utf-8", errors="replace") if isinstance(x, bytes) else str(x)
  for task in seqio.get_subtasks(seqio.get_mixture_or_task(name)):
    if split not in task.splits:
      raise ValueError(f"{task.name} has no split {split!r}; expected one of "
                       f"{list(task.splits)}.")
    ds = task.get_dataset(sequence_length, split=split, shuffle=False, num_epochs=1)
    if num_examples:
      ds = ds.take(num_examples)
    for i, ex in enumerate(ds.as_numpy_iterator()):
      yield Record(input=text(ex["inputs_pretokenized"]), prompt=task.name, task=task.name,
                   target=text(ex["targets_pretokenized"]) if "targets_pretokenized" in ex
                   else None, ids=np.asarray(ex["inputs"], np.int32),
                   line=f"{task.name}[{i}]")
