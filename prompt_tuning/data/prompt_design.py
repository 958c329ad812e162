"""Prompt design (the paper's baseline, Lester et al. 2021 Figure 1): the task told in words.

No parameter is trained. Each input is rewritten as text before it is tokenized:

  template      "majority: {inputs}"   (`{inputs}` the example's input text; optional
                `{demos}`, the demonstrations, else they go first)
  demonstrations  k examples drawn from the train split with a fixed seed (few-shot,
                GPT-3 style), each written as `demo_template` ("{inputs} {targets}")
                and joined by `separator`

`design_task(name, ...)` registers a seqio task that is `name` with that
rewrite inserted just before tokenization (same source, metrics and
postprocessing), so the project's evaluator scores the frozen model on it as
on any task. Long demonstrations need a larger TASK_FEATURE_LENGTHS["inputs"]
(seqio truncates the rest from the end).
"""
import dataclasses
import hashlib
from typing import Optional

import numpy as np
import seqio
import tensorflow as tf

from prompt_tuning.data import inputs

INPUTS_FIELD = "{inputs}"
DEMOS_FIELD = "{demos}"


@dataclasses.dataclass(frozen=True)
class Design:
  """A hard prompt.

  Attributes:
    template: the input as the model sees it; must contain "{inputs}"; may
      contain "{demos}" (default: demonstrations, if any, then the template).
    num_shots: k demonstrations from the train split (0: zero-shot).
    demo_template: one demonstration, from its "{inputs}" and "{targets}".
    separator: between demonstrations, and between them and the input.
    seed: which k train examples are drawn.
    demo_split: where the demonstrations come from.
  """
  template: str = INPUTS_FIELD
  num_shots: int = 0
  demo_template: str = "{inputs} {targets}"
  separator: str = " "
  seed: int = 0
  demo_split: str = "train"

  def __post_init__(self):
    if not isinstance(self.template, str) or not self.template.strip():
      raise ValueError(f"prompt design template={self.template!r} is empty; expected text "
                       f"containing {INPUTS_FIELD}, e.g. 'majority: {INPUTS_FIELD}'.")
    if self.template.count(INPUTS_FIELD) != 1:
      raise ValueError(f"prompt design template={self.template!r} has "
                       f"{self.template.count(INPUTS_FIELD)} {INPUTS_FIELD}; expected one, "
                       "saying where the example's input goes.")
    if isinstance(self.num_shots, bool) or not isinstance(self.num_shots, int) or \
        self.num_shots < 0:
      raise ValueError(f"prompt design num_shots={self.num_shots!r}; expected an int >= 0.")
    if self.num_shots and not all(f in self.demo_template for f in ("{inputs}", "{targets}")):
      raise ValueError(f"prompt design demo_template={self.demo_template!r}; expected "
                       "both {inputs} and {targets}.")

  def render(self, text: str, demos: str = "") -> str:
    """One input: `template` filled with `text` (and `demos`)."""
    body = self.template.replace(INPUTS_FIELD, text)
    if DEMOS_FIELD in body:
      return body.replace(DEMOS_FIELD, demos)
    return f"{demos}{self.separator}{body}" if demos else body

  @property
  def tag(self) -> str:
    """A short, stable name for this design (part of the registered task's name)."""
    return hashlib.sha1(repr(self).encode()).hexdigest()[:8]


def _split_at_tokenize(task: seqio.Task) -> int:
  for i, step in enumerate(task.preprocessors):
    if getattr(step, "__name__", "") in ("tokenize", "tokenize_and_append_eos"):
      return i
  raise ValueError(f"task {task.name!r} has no seqio tokenize preprocessor "
                   f"({[getattr(p, '__name__', p) for p in task.preprocessors]}); prompt "
                   "design rewrites the input text just before it.")


def text_examples(task: seqio.Task, split: str) -> tf.data.Dataset:
  """`task`'s examples as text, just before tokenization (its own text preprocessing done)."""
  pre = task.preprocessors[:_split_at_tokenize(task)]
  raw = seqio.Task(f"{task.name}__text", source=task.source, preprocessors=pre,
                   output_features={})
  return raw.get_dataset(sequence_length=None, split=split, shuffle=False)


def demonstrations(task: seqio.Task, design: Design) -> str:
  """The k demonstrations, drawn without replacement from `design.demo_split`, joined."""
  if not design.num_shots:
    return ""
  # Only the two texts, in batches: a split of 20,000 rows reads in a second, not in the
  # ~10 s one Python round trip per row took.
  pairs = text_examples(task, design.demo_split).map(
      lambda ex: (ex["inputs"], ex["targets"])).batch(4096)
  inputs_text, targets_text = [], []
  for batch_inputs, batch_targets in pairs.as_numpy_iterator():
    inputs_text.extend(batch_inputs)
    targets_text.extend(batch_targets)
  if len(inputs_text) < design.num_shots:
    raise ValueError(f"prompt design num_shots={design.num_shots} but task {task.name!r} "
                     f"has {len(inputs_text)} {design.demo_split!r} examples.")
  chosen = np.random.default_rng(design.seed).choice(len(inputs_text), design.num_shots,
                                                     replace=False)
  text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)
  return design.separator.join(
      design.demo_template.replace("{inputs}", text(inputs_text[i]))
      .replace("{targets}", text(targets_text[i])) for i in chosen)


def design_task(mixture_or_task_name: str, design: Design,
                name: Optional[str] = None) -> str:
  """Registers `mixture_or_task_name` with its inputs rewritten by `design`; returns its name.

  Args:
    mixture_or_task_name: a registered seqio task (not a mixture).
    design: the hard prompt.
    name: the new task's name (default `<task>_design_<tag>`); re-registered if present.

  Raises:
    ValueError: a mixture, a task without a tokenize step, too few demonstrations.
  """
  task = inputs.get_task(mixture_or_task_name)
  if not isinstance(task, seqio.Task):
    raise ValueError(f"prompt design needs one task; {mixture_or_task_name!r} is a mixture of "
                     f"{[t.name for t in seqio.get_subtasks(task)]}.")
  cut = _split_at_tokenize(task)
  demos = demonstrations(task, design)

  before, after = design.render("\x00", demos).split("\x00")

  @seqio.map_over_dataset
  def rewrite(ex):
    return {**ex, "inputs": tf.strings.join([before, ex["inputs"], after])}

  name = name or f"{task.name}_design_{design.tag}"
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      name, source=task.source,
      preprocessors=[*task.preprocessors[:cut], rewrite, *task.preprocessors[cut:]],
      output_features=task.output_features, postprocess_fn=task.postprocessor,
      metric_fns=list(task.metric_fns), shuffle_buffer_size=task.shuffle_buffer_size)
  return name
