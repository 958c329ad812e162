"""seqio postprocessors: decoded text (or the cached example) -> what metrics compare.

seqio calls `postprocess_fn(text, example=example, is_target=...)` on every
decoded prediction and every target, where `example` is the task example as
cached by the evaluator (numpy; strings as bytes). Targets are read from the
example (its `label`, ids, answers), not from the decoded target text, so
they do not depend on the vocabulary.

Classification predictions go through the task's verbalizer; text that is no
label word becomes -1 (an illegal label: scored wrong, counted by
`metrics.illegal_label_rate`).
"""
import functools
import math
from typing import Any, Callable, Mapping, Optional

import numpy as np

from prompt_tuning.data import verbalizers

Postprocessor = Callable[..., Any]

# A value outside STS-B's 0-5 scale for unparsable predictions (T5's choice).
UNPARSABLE_SCORE = -1.0
# Words WSC referent matching ignores (articles, determiners, possessives).
_WSC_IGNORED = frozenset(
    "a an the this that these those some any each every few many much my our your his her "
    "its their whose which".split())


def _text(value) -> str:
  if isinstance(value, bytes):
    return value.decode("utf-8", errors="replace")
  if isinstance(value, np.ndarray) and value.ndim == 0:
    return _text(value.item())
  return str(value)


def example_key(example: Mapping[str, Any]) -> tuple[int, ...]:
  """The example's id as a tuple: (idx,) or the `idx/<part>` ids in name order."""
  if "idx" in example:
    return (int(example["idx"]),)
  parts = sorted(k for k in example if k.startswith("idx/"))
  if not parts:
    raise ValueError(f"example has no id ('idx' or 'idx/<part>'); found keys {sorted(example)}.")
  return tuple(int(example[k]) for k in parts)


def _grouped(value, group) -> dict:
  return {"group": group, "value": value}


# -------------------------------------------------------- classification
def _class_id(text, example=None, is_target=False, *, task: str,
              group: Optional[Callable[[Mapping], Any]] = None):
  if is_target:
    value = int(example["label"])
  else:
    value = verbalizers.get_verbalizer(task).to_class(_text(text))
  return value if group is None else _grouped(value, group(example))


def class_id(task: str) -> Postprocessor:
  """Label word -> class id via `task`'s verbalizer (looked up at call time); -1 if none."""
  verbalizers.label_space(task)  # fail at registration, not at the first eval
  return functools.partial(_class_id, task=task)


def multirc_question(example: Mapping[str, Any]) -> tuple[int, int]:
  """MultiRC groups answer options by question: (paragraph id, question id)."""
  return int(example["idx/paragraph"]), int(example["idx/question"])


def gender_pair(example: Mapping[str, Any]) -> tuple[int, str]:
  """AX-g: examples 2k and 2k+1 differ only in the pronoun's gender and share the hypothesis."""
  return int(example["idx"]) // 2, _text(example["hypothesis"])


def grouped_class_id(task: str, group: Callable[[Mapping], Any]) -> Postprocessor:
  """Like `class_id`, as {"group": group(example), "value": class id}."""
  verbalizers.label_space(task)
  return functools.partial(_class_id, task=task, group=group)


# ------------------------------------------------------------ other tasks
def score(text, example=None, is_target=False) -> float:
  """STS-B: the gold score (unrounded), or the predicted number (-1.0 if unparsable)."""
  if is_target:
    return float(example["label"])
  try:
    value = float(_text(text).strip())
  except ValueError:
    return UNPARSABLE_SCORE
  return value if math.isfinite(value) else UNPARSABLE_SCORE


def record_answer(text, example=None, is_target=False):
  """ReCoRD: the predicted text, or {"group": (passage, query), "answers": [...]}."""
  if is_target:
    return {"group": (int(example["idx/passage"]), int(example["idx/query"])),
            "answers": [_text(a) for a in example["answers"]]}
  return _text(text)


def answers(text, example=None, is_target=False):
  """SQuAD / MRQA: the predicted text, or the example's gold answers as a list of texts.

  Every gold answer is kept (`example["answers"]`, [A] strings), so
  `metrics.squad` takes the max over them.
  """
  if is_target:
    return [_text(a) for a in example["answers"]]
  return _text(text)


def _wsc_words(text: str) -> list[str]:
  words = "".join(c if c.isalnum() or c in "' " else " " for c in text.lower()).split()
  return [w for w in words if w not in _WSC_IGNORED]


def referent_matches(prediction: str, candidate: str) -> bool:
  """Whether a generated referent names the candidate (T5-simple WSC evaluation).

  Case, punctuation, articles and determiners are ignored; then one word set
  must contain the other ("fuzzy bunny" names "bunny"), and a possessive on
  one side only is a mismatch ("Bob" does not name "Bob's hat").
  """
  ours, theirs = _wsc_words(prediction), _wsc_words(candidate)
  if not ours or not theirs:
    return False
  if any("'" in w for w in ours) != any("'" in w for w in theirs):
    return False
  return set(ours) <= set(theirs) or set(theirs) <= set(ours)


def wsc_referent(text, example=None, is_target=False) -> int:
  """WSC: the label, or 1 if the generation names the candidate, 0 if not, -1 if empty."""
  if is_target:
    return int(example["label"])
  if not _text(text).strip():
    return -1
  return int(referent_matches(_text(text), _text(example["targets_pretokenized"])))


# ------------------------------------------------------ rank classification
def _rank_target(text, example=None, is_target=False, *, base: Postprocessor):
  if not is_target:
    return text
  return {"example": example_key(example), "option": int(example["option"]),
          "num_options": int(example["num_options"]),
          "label": base(text, example=example, is_target=True)}


def rank_target(base: Postprocessor) -> Postprocessor:
  """Targets of a rank-classification task: {"example", "option", "num_options", "label"}.

  `label` is what `base` gives the target (a class id, or a grouped dict).
  Scores are not postprocessed (seqio passes them to score metrics as they are).
  """
  return functools.partial(_rank_target, base=base)
