"""Official SuperGLUE / GLUE and SQuAD metrics, in seqio's form, as percentages.

Predict metrics are `fn(targets, predictions) -> {name: value}` over
postprocessed targets and predictions (class ids, floats, texts, or
{"group", "value"} dicts for grouped tasks). A prediction of -1 is an illegal
label (decoded text that is no label word): it is always wrong. For binary
metrics (F1, Matthews) it counts as the wrong class (1 - target), as T5's
`f1_score_with_invalid`; for CB's macro F1 it is a miss of the true class.

Score metrics (`rank_classification`) are `fn(targets, scores)`; see there.

Targets of -1 (unlabelled examples, e.g. a GLUE test split) raise: there is
nothing to score against.
"""
import collections
import logging
import re
import string
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import scipy.stats

from prompt_tuning.data import postprocessors

MetricFn = Callable[..., dict]


# ----------------------------------------------------------------- helpers
def _values(items: Sequence[Any]) -> list:
  """Class ids, unwrapping {"group", "value"} dicts."""
  return [x["value"] if isinstance(x, Mapping) else x for x in items]


def _check(name: str, targets: Sequence, predictions: Sequence) -> tuple[np.ndarray, np.ndarray]:
  """[N] int targets and predictions, after checking what a metric needs."""
  if len(targets) != len(predictions) or not len(targets):
    raise ValueError(f"{name}: {len(targets)} targets and {len(predictions)} predictions; "
                     "expected the same number, > 0.")
  t = np.asarray(_values(targets), dtype=np.int64)
  p = np.asarray(_values(predictions), dtype=np.int64)
  unlabeled = int(np.sum(t < 0))
  if unlabeled:
    raise ValueError(f"{name}: {unlabeled} of {len(t)} targets are -1 (unlabelled examples, "
                     "e.g. a test split); expected labelled examples.")
  return t, p


def _binary(t: np.ndarray, p: np.ndarray) -> np.ndarray:
  """Predictions other than 0/1 (illegal labels) become the wrong class."""
  return np.where((p == 0) | (p == 1), p, 1 - t)


def _f1(t: np.ndarray, p: np.ndarray, positive: int) -> float:
  tp = np.sum((p == positive) & (t == positive))
  fp = np.sum((p == positive) & (t != positive))
  fn = np.sum((p != positive) & (t == positive))
  return 0.0 if tp == 0 else float(2 * tp / (2 * tp + fp + fn))


# ---------------------------------------------------------- classification
def accuracy(targets, predictions) -> dict:
  """% of predictions equal to the target (illegal labels are wrong)."""
  t, p = _check("accuracy", targets, predictions)
  return {"accuracy": 100.0 * float(np.mean(t == p))}


def illegal_label_rate(targets, predictions) -> dict:
  """% of predictions that are no label word of the verbalizer (-1)."""
  _check("illegal_label_rate", targets, predictions)
  p = np.asarray(_values(predictions))
  return {"illegal_label_rate": 100.0 * float(np.mean(p == -1))}


def f1(targets, predictions) -> dict:
  """Binary F1 of class 1 (MRPC, QQP; MultiRC's F1a); illegal labels are wrong."""
  t, p = _check("f1", targets, predictions)
  return {"f1": 100.0 * _f1(t, _binary(t, p), 1)}


def macro_f1(num_classes: int) -> MetricFn:
  """Unweighted mean of the per-class F1 over `num_classes` classes (CB: 3)."""
  def macro_f1_fn(targets, predictions) -> dict:
    t, p = _check("macro_f1", targets, predictions)
    return {"macro_f1": 100.0 * float(np.mean([_f1(t, p, c) for c in range(num_classes)]))}
  return macro_f1_fn


def matthews_corrcoef(targets, predictions) -> dict:
  """Binary Matthews correlation (CoLA, AX-b); 0 when a marginal is constant."""
  t, p = _check("matthews_corrcoef", targets, predictions)
  p = _binary(t, p)
  tp = float(np.sum((p == 1) & (t == 1)))
  tn = float(np.sum((p == 0) & (t == 0)))
  fp = float(np.sum((p == 1) & (t == 0)))
  fn = float(np.sum((p == 0) & (t == 1)))
  denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  mcc = 0.0 if denominator == 0 else (tp * tn - fp * fn) / denominator
  return {"matthews_corrcoef": 100.0 * float(mcc)}


def multirc(targets, predictions) -> dict:
  """MultiRC: exact match per question (every answer option right) and F1a.

  Targets and predictions are {"group": question, "value": class id}; F1a is
  the binary F1 over all answer options.
  """
  t, p = _check("multirc", targets, predictions)
  groups = [x["group"] for x in targets]
  right = collections.defaultdict(lambda: True)
  for g, ti, pi in zip(groups, t, p):
    right[g] &= bool(ti == pi)
  return {"exact_match": 100.0 * float(np.mean(list(right.values()))),
          "f1a": 100.0 * _f1(t, _binary(t, p), 1)}


def gender_parity(targets, predictions) -> dict:
  """AX-g: % of pronoun-gender pairs whose two predictions agree.

  Targets are {"group": pair, "value": class id}. Parity needs every pair
  whole (two examples sharing a hypothesis); otherwise the ids do not allow
  it, and it is left out with a warning.
  """
  _, p = _check("gender_parity", targets, predictions)
  pairs = collections.defaultdict(list)
  for x, pi in zip(targets, p):
    pairs[x["group"]].append(int(pi))
  broken = sum(len(v) != 2 for v in pairs.values())
  if broken:
    logging.warning("gender_parity: %d of %d pairs are not two examples with one hypothesis; "
                    "expected AX-g ids 2k, 2k+1 to be a pair. Parity is not reported.",
                    broken, len(pairs))
    return {}
  return {"gender_parity": 100.0 * float(np.mean([a == b for a, b in pairs.values()]))}


# --------------------------------------------------------------- STS-B
def _floats(name: str, targets, predictions) -> tuple[np.ndarray, np.ndarray]:
  if len(targets) != len(predictions) or len(targets) < 2:
    raise ValueError(f"{name}: {len(targets)} targets and {len(predictions)} predictions; "
                     "expected the same number, >= 2.")
  return np.asarray(targets, np.float64), np.asarray(predictions, np.float64)


def pearson_corrcoef(targets, predictions) -> dict:
  t, p = _floats("pearson_corrcoef", targets, predictions)
  return {"pearson_corrcoef": 100.0 * float(scipy.stats.pearsonr(t, p)[0])}


def spearman_corrcoef(targets, predictions) -> dict:
  t, p = _floats("spearman_corrcoef", targets, predictions)
  return {"spearman_corrcoef": 100.0 * float(scipy.stats.spearmanr(t, p)[0])}


def unparsable_rate(targets, predictions) -> dict:
  """% of STS-B predictions that were no number (postprocessed to -1.0)."""
  _, p = _floats("unparsable_rate", targets, predictions)
  return {"unparsable_rate": 100.0 * float(np.mean(p == postprocessors.UNPARSABLE_SCORE))}


# ------------------------------------------------ ReCoRD, SQuAD and MRQA
def normalize_answer(text: str) -> str:
  """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces.

  In that order, as the SQuAD v1.1 evaluation does it: "The  U.S.A.!" -> "usa";
  "a" / "an" / "the" go only as whole words ("theory" stays).
  """
  text = text.lower()
  text = "".join(c for c in text if c not in set(string.punctuation))
  text = re.sub(r"\b(a|an|the)\b", " ", text)
  return " ".join(text.split())


def _token_f1(prediction: str, answer: str) -> float:
  """Bag-of-tokens F1 of two normalised texts; 0 when they share no token (also when
  either is empty, as in SQuAD v1.1)."""
  ours, theirs = normalize_answer(prediction).split(), normalize_answer(answer).split()
  common = sum((collections.Counter(ours) & collections.Counter(theirs)).values())
  if common == 0:
    return 0.0
  precision, recall = common / len(ours), common / len(theirs)
  return 2 * precision * recall / (precision + recall)


def _max_over_answers(name: str, answers: Sequence[Sequence[str]],
                      predictions: Sequence[str]) -> dict:
  """{"exact_match", "f1"} in percent: per example the max over its gold answers, then the mean.

  Args:
    name: the metric, for errors.
    answers: [N] lists of gold answer texts (each list non-empty).
    predictions: [N] predicted texts ("" when the model produced nothing).
  """
  if len(answers) != len(predictions) or not len(answers):
    raise ValueError(f"{name}: {len(answers)} targets and {len(predictions)} predictions; "
                     "expected the same number, > 0.")
  unanswered = sum(not len(a) for a in answers)
  if unanswered:
    raise ValueError(f"{name}: {unanswered} of {len(answers)} targets have no answers "
                     "(unlabelled examples, e.g. a test split); expected labelled examples.")
  em = [max(float(normalize_answer(p) == normalize_answer(a)) for a in gold)
        for gold, p in zip(answers, predictions)]
  f1s = [max(_token_f1(p, a) for a in gold) for gold, p in zip(answers, predictions)]
  return {"exact_match": 100.0 * float(np.mean(em)), "f1": 100.0 * float(np.mean(f1s))}


def record(targets, predictions) -> dict:
  """ReCoRD: exact match and token F1, each the max over the gold answers.

  Targets are {"group", "answers": [...]}, predictions the generated text.
  """
  return _max_over_answers("record", [t["answers"] for t in targets], predictions)


def squad(targets, predictions) -> dict:
  """SQuAD / MRQA: exact match and token F1 in percent, each the max over the gold answers.

  The answers are compared after `normalize_answer`, as SQuAD v1.1's
  evaluation does (T5 reports the same two numbers, times 100). Targets are
  lists of gold answer texts (`postprocessors.answers`), predictions the
  decoded text; an empty prediction scores 0 unless a gold answer normalises
  to "" too (then EM 1, F1 0, as in SQuAD v1.1).
  """
  return _max_over_answers("squad", targets, predictions)


# ---------------------------------------------------- rank classification
def rank_classification(metric_fns: Sequence[MetricFn]) -> MetricFn:
  """A seqio score metric: argmax over each example's options, then `metric_fns`.

  The evaluator scores every option example (seqio's `score_fn`: the sum of
  the target's token log-probabilities, T5X `score_batch`) and seqio calls
  `fn(targets, scores)` with, per option example, the postprocessed target
  {"example": id tuple, "option": i, "num_options": C, "label": base target}
  (`postprocessors.rank_target`) and its score. Options of one example are
  grouped by id; the highest score wins (ties: the lower option). The
  prediction takes the base target's form (a class id, or its grouped dict
  with the option as value) and `metric_fns` score it as a decoded prediction.
  Examples with missing options (an eval cut at `num_examples`) are left out
  with a warning.
  """
  def rank_classification_fn(targets, scores) -> dict:
    if len(targets) != len(scores) or not len(targets):
      raise ValueError(f"rank_classification: {len(targets)} targets and {len(scores)} scores; "
                       "expected one score per option example, > 0.")
    examples: dict = {}
    for target, value in zip(targets, np.asarray(scores, np.float64).reshape(len(targets))):
      entry = examples.setdefault(target["example"], {"label": target["label"],
                                                      "num": target["num_options"],
                                                      "scores": {}})
      if target["option"] in entry["scores"]:
        raise ValueError(f"rank_classification: example {target['example']} has option "
                         f"{target['option']} twice; expected unique example ids.")
      entry["scores"][target["option"]] = float(value)
    complete = {k: v for k, v in examples.items() if len(v["scores"]) == v["num"]}
    if len(complete) < len(examples):
      logging.warning("rank_classification: %d of %d examples miss some options and are "
                      "left out.", len(examples) - len(complete), len(examples))
    if not complete:
      raise ValueError("rank_classification: no example has all its options scored.")
    labels, predictions = [], []
    for entry in complete.values():
      best = max(sorted(entry["scores"]), key=lambda o: entry["scores"][o])
      label = entry["label"]
      labels.append(label)
      predictions.append(dict(label, value=best) if isinstance(label, Mapping) else best)
    out = {}
    for fn in metric_fns:
      out.update(fn(labels, predictions))
    return out
  return rank_classification_fn
