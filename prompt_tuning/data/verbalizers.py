"""Verbalizers: the words a classification task's labels are written as.

One `Verbalizer` per label space is the single source of truth for the target
strings, the class-label prompt initializer (`class_labels`), postprocessing
(decoded text -> class id) and rank classification (the options scored).

Label spaces are named by benchmark and dataset, e.g. `super_glue_cb`,
`glue_sst2`. Any registered task name resolves to its label space: the
`taskless_` prefix, the `_v102`/`_v200` version and the `_rank_classification`
suffix are dropped, and evaluation-only views share the words of the task they
are evaluated as (AX-b and AX-g as SuperGLUE RTE, GLUE AX and the MNLI
matched/mismatched splits as MNLI, `glue_mrpc_from_qqp` as QQP; see `ALIASES`).

Default words are the TFDS label names. Override them from Python (or gin,
through `tasks.register_tasks(label_words=...)`):

  set_label_words("super_glue_cb", ["yes", "no", "maybe"])

Words are looked up when a task's data, postprocessor or metrics are built, so
set them before building datasets or an evaluator.
"""
import dataclasses
import re
import types
from typing import Mapping, Optional, Sequence, Union

# Target text of unlabelled examples (label -1, e.g. test splits), as in T5.
UNLABELED_TARGET = "<unk>"

# TFDS label names, index = class id (super_glue 1.0.2, glue 2.0.0).
LABEL_WORDS: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "super_glue_boolq": ("False", "True"),
    "super_glue_cb": ("entailment", "contradiction", "neutral"),
    "super_glue_copa": ("choice1", "choice2"),
    "super_glue_multirc": ("False", "True"),
    "super_glue_rte": ("entailment", "not_entailment"),
    "super_glue_wic": ("False", "True"),
    "glue_cola": ("unacceptable", "acceptable"),
    "glue_sst2": ("negative", "positive"),
    "glue_mrpc": ("not_equivalent", "equivalent"),
    "glue_qqp": ("not_duplicate", "duplicate"),
    "glue_mnli": ("entailment", "neutral", "contradiction"),
    "glue_qnli": ("entailment", "not_entailment"),
    "glue_rte": ("entailment", "not_entailment"),
    "glue_wnli": ("not_entailment", "entailment"),
})

# Tasks evaluated in another task's label space (class ids line up).
ALIASES: Mapping[str, str] = types.MappingProxyType({
    "super_glue_axb": "super_glue_rte",
    "super_glue_axg": "super_glue_rte",
    "glue_ax": "glue_mnli",
    "glue_mnli_matched": "glue_mnli",
    "glue_mnli_mismatched": "glue_mnli",
    # Zero-shot transfer (paper section 5): the model answers in the words of
    # the task it was tuned on; not_duplicate/duplicate line up with
    # not_equivalent/equivalent.
    "glue_mrpc_from_qqp": "glue_qqp",
    "glue_qqp_from_mrpc": "glue_mrpc",
})

# Tasks whose targets are not label words.
NO_VERBALIZER = {
    "super_glue_record": "its targets are answer entities",
    "super_glue_wsc": "its targets are the referent's text (T5's simple WSC)",
    "glue_stsb": "its targets are similarity scores",
}

_OVERRIDES: dict[str, tuple[str, ...]] = {}
_SUFFIXES = re.compile(r"(_rank_classification)$|(_v\d+)$")


@dataclasses.dataclass(frozen=True)
class Verbalizer:
  """Class id <-> text for one label space.

  Attributes:
    task: the label space (e.g. "super_glue_cb"), named in errors.
    labels: the text of each class; index = class id. Multi-token words are fine.
  """
  task: str
  labels: tuple[str, ...]

  def __post_init__(self):
    labels = self.labels
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
      raise ValueError(f"{self.task}: label words {labels!r}; expected a sequence of strings.")
    labels = tuple(labels)
    if not labels:
      raise ValueError(f"{self.task}: empty verbalizer; expected one label word per class.")
    for i, word in enumerate(labels):
      if not isinstance(word, str) or not word.strip():
        raise ValueError(f"{self.task}: label word {i} is {word!r}; expected non-empty text.")
      if word != word.strip():
        raise ValueError(f"{self.task}: label word {i} is {word!r}; expected no leading or "
                         "trailing whitespace (decoded text is stripped before lookup).")
      if word == UNLABELED_TARGET:
        raise ValueError(f"{self.task}: label word {i} is {word!r}, the target of unlabelled "
                         "examples; expected another word.")
    duplicated = sorted({w for w in labels if labels.count(w) > 1})
    if duplicated:
      raise ValueError(f"{self.task}: label words {list(labels)} repeat {duplicated}; "
                       "expected one distinct word per class.")
    object.__setattr__(self, "labels", labels)

  @property
  def num_classes(self) -> int:
    return len(self.labels)

  def to_text(self, class_id: int) -> str:
    """The word of `class_id`.

    Raises:
      ValueError: `class_id` is not in [0, num_classes).
    """
    if not 0 <= int(class_id) < len(self.labels):
      raise ValueError(f"{self.task}: class id {class_id} is outside the verbalizer "
                       f"{list(self.labels)}; expected 0..{len(self.labels) - 1}.")
    return self.labels[int(class_id)]

  def to_class(self, text: Union[str, bytes]) -> int:
    """The class id of decoded `text` (surrounding whitespace ignored), -1 if none.

    Matching is exact and case-sensitive: "true" is not "True". A -1 is an
    illegal label, scored wrong and counted by `metrics.illegal_label_rate`.
    """
    if isinstance(text, bytes):
      text = text.decode("utf-8", errors="replace")
    text = text.strip()
    return self.labels.index(text) if text in self.labels else -1


def _base_name(task_name: str) -> str:
  """taskless_glue_mnli_v200_rank_classification -> glue_mnli."""
  base = task_name[len("taskless_"):] if task_name.startswith("taskless_") else task_name
  while _SUFFIXES.search(base):
    base = _SUFFIXES.sub("", base)
  return base


def label_space(task_name: str) -> str:
  """The label space of a task name, e.g. taskless_super_glue_axb_v102 -> super_glue_rte.

  Raises:
    ValueError: the task has no verbalizer (why is said) or is unknown.
  """
  if not isinstance(task_name, str) or not task_name:
    raise ValueError(f"task name {task_name!r}; expected e.g. 'super_glue_cb' or "
                     "'taskless_super_glue_cb_v102'.")
  base = _base_name(task_name)
  base = ALIASES.get(base, base)
  if base in LABEL_WORDS:
    return base
  if base in NO_VERBALIZER:
    raise ValueError(f"{task_name}: no verbalizer; {NO_VERBALIZER[base]}.")
  raise ValueError(f"{task_name}: unknown classification task; expected one of "
                   f"{sorted(LABEL_WORDS)} or {sorted(ALIASES)} (with optional taskless_ "
                   "prefix, version and _rank_classification suffix).")


def has_verbalizer(task_name: str) -> bool:
  try:
    label_space(task_name)
  except ValueError:
    return False
  return True


def get_verbalizer(task_name: str) -> Verbalizer:
  """The current verbalizer of a task (its overridden words, else TFDS's)."""
  key = label_space(task_name)
  return Verbalizer(key, _OVERRIDES.get(key, LABEL_WORDS[key]))


def class_labels(task_name: str) -> list[str]:
  """The label words of a task, index = class id: CLASS_LABELS for the prompt init."""
  return list(get_verbalizer(task_name).labels)


def set_label_words(task_name: str, words: Sequence[str]) -> Verbalizer:
  """Overrides the words of a label space (e.g. CB -> yes / no / maybe).

  Args:
    task_name: a label space or any task name in it (not an alias: AX-b's words
      are RTE's, so set them on super_glue_rte).
    words: one word per class, in TFDS class-id order.

  Returns:
    The new verbalizer.

  Raises:
    ValueError: an alias, a wrong number of words, empty or repeated words.
  """
  verbalizer = check_label_words(task_name, words)
  _OVERRIDES[verbalizer.task] = verbalizer.labels
  return verbalizer


def check_label_words(task_name: str, words: Sequence[str]) -> Verbalizer:
  """The verbalizer `set_label_words` would set, without setting it (same errors)."""
  key = label_space(task_name)
  if _base_name(task_name) in ALIASES:
    raise ValueError(f"{task_name} is evaluated in {key}'s label space; set the words of "
                     f"{key} instead.")
  verbalizer = Verbalizer(key, words)
  defaults = LABEL_WORDS[key]
  if verbalizer.num_classes != len(defaults):
    raise ValueError(f"{key}: {verbalizer.num_classes} label words {list(verbalizer.labels)}; "
                     f"expected {len(defaults)}, one per class {list(defaults)} (TFDS order).")
  return verbalizer


def reset_label_words(task_name: Optional[str] = None) -> None:
  """Back to TFDS's words for one label space, or for all (None)."""
  if task_name is None:
    _OVERRIDES.clear()
  else:
    _OVERRIDES.pop(label_space(task_name), None)
