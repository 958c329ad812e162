"""Registered tasks through seqio.Evaluator, as the trainer runs them.

Predictions are decoded token ids (greedy decoding), scores are one float per
(option) example (the sum of target log-probabilities); the metric values are
worked out by hand.
"""
import pytest
import seqio

import data_fixtures as fx
from prompt_tuning.data import verbalizers

BYTES = seqio.ByteVocabulary()
TARGET_LENGTH = 16


@pytest.fixture(autouse=True)
def _registered():
  fx.register_bytes()
  yield
  verbalizers.reset_label_words()


def _evaluate(name, served, predictions=None, scores=None, split="validation"):
  """Metrics of `name` when the model says predictions[i] / scores[i] for example i."""
  def predict_fn(ds, model_feature_shapes=None):
    del model_feature_shapes
    out = []
    for i, _ in ds.as_numpy_iterator():
      tokens = BYTES.encode(predictions[i]) + [BYTES.eos_id]
      out.append((int(i), tokens + [0] * (TARGET_LENGTH - len(tokens))))
    return out

  def score_fn(ds, model_feature_shapes=None):
    del model_feature_shapes
    return [(int(i), float(scores[i])) for i, _ in ds.as_numpy_iterator()]

  with fx.serve(served):
    evaluator = seqio.Evaluator(
        name, seqio.EncDecFeatureConverter(pack=False), eval_split=split,
        sequence_length={"inputs": 160, "targets": TARGET_LENGTH}, logger_cls=(),
        use_memory_cache=True)
    result, _ = evaluator.evaluate(compute_metrics=True, predict_fn=predict_fn,
                                   score_fn=score_fn)
  return {k: float(getattr(v, "value", v)) for k, v in result.result()[name].items()}


def _cb(labels):
  raw = fx.EXAMPLES["super_glue_cb_v102"][1]
  return {("super_glue/cb", "validation"): [dict(raw, label=l, idx=i)
                                            for i, l in enumerate(labels)]}


def test_generation_with_an_illegal_label():
  got = _evaluate("taskless_super_glue_cb_v102", _cb([0, 1, 2, 0]),
                  predictions=["entailment", "neutral", "maybe", " entailment"])
  # classes [0, 2, -1, 0] vs [0, 1, 2, 0]; F1: class 0 = 1, classes 1 and 2 = 0
  assert got == pytest.approx({"accuracy": 50.0, "macro_f1": 100 / 3,
                               "illegal_label_rate": 25.0})


def test_multirc_exact_match_groups_answers_by_question():
  raw = fx.EXAMPLES["super_glue_multirc_v102"][1]
  rows = [dict(raw, label=label, idx={"paragraph": 3, "question": q, "answer": a})
          for q, a, label in [(1, 0, 1), (1, 1, 0), (2, 0, 1)]]
  got = _evaluate("super_glue_multirc_v102", {("super_glue/multirc", "validation"): rows},
                  predictions=["True", "False", "False"])
  # question 1 all right, question 2 wrong; F1a: tp 1, fn 1
  assert got == pytest.approx({"exact_match": 50.0, "f1a": 100 * 2 / 3,
                               "illegal_label_rate": 0.0})


def test_rank_classification_scores_every_label_word():
  # option examples: example 0 -> options 0..2, example 1 -> options 3..5
  got = _evaluate("taskless_super_glue_cb_v102_rank_classification", _cb([0, 2]),
                  scores=[-1.0, -3.0, -2.0, -0.5, -4.0, -1.0])
  # argmax [0, 0] vs labels [0, 2]; F1: class 0 = 2/3, others 0
  assert got == pytest.approx({"accuracy": 50.0, "macro_f1": 100 * (2 / 3) / 3})


def test_copa_ranks_its_two_choices():
  raw = fx.EXAMPLES["super_glue_copa_v102"][1]  # label 0
  served = {("super_glue/copa", "validation"): [raw, dict(raw, label=1, idx=2)]}
  got = _evaluate("super_glue_copa_v102_rank_classification", served,
                  scores=[-2.0, -9.0, -2.0, -1.0])
  assert got == {"accuracy": 100.0}
  assert _evaluate("super_glue_copa_v102_rank_classification", served,
                   scores=[-9.0, -2.0, -2.0, -1.0]) == {"accuracy": 50.0}


def test_record_scores_against_every_gold_answer():
  raw = fx.EXAMPLES["super_glue_record_v102"][1]  # answers Kim, Kim Park
  other = dict(raw, answers=["Lee"], idx={"passage": 7, "query": 3})
  served = {("super_glue/record", "validation"): [raw, other]}
  got = _evaluate("taskless_super_glue_record_v102", served, predictions=["kim park", "Paris"])
  assert got == {"exact_match": 50.0, "f1": 50.0}
  got = _evaluate("taskless_super_glue_record_v102", served, predictions=["Kim Park Lee", "Lee"])
  # "kim park lee" vs "kim park": precision 2/3, recall 1 -> F1 0.8
  assert got["exact_match"] == 50.0 and got["f1"] == pytest.approx(100 * (0.8 + 1) / 2)


def test_squad_and_mrqa_score_against_every_gold_answer():
  squad = fx.EXAMPLES["squad_v11_v300"][1]  # gold answers "Ada", "by Ada"
  other = dict(squad, id="s1", answers={"text": ["1901"], "answer_start": [31]})
  served = {("squad/v1.1", "validation"): [squad, other]}
  got = _evaluate("squad_v11_v300", served, predictions=["By Ada.", "in 1901"])
  # "by ada" == the second gold answer (EM 1); "in 1901" vs "1901": P 1/2, R 1 -> F1 2/3
  assert got == {"exact_match": 50.0, "f1": pytest.approx(100 * (1 + 2 / 3) / 2)}
  drop = fx.EXAMPLES["mrqa_drop_v100"][1]  # gold answers "3", "three"
  served = {("mrqa/drop", "test"): [drop]}
  assert _evaluate("mrqa_drop_v100", served, predictions=["Three"], split="test") == {
      "exact_match": 100.0, "f1": 100.0}
  assert _evaluate("mrqa_drop_v100", served, predictions=[""], split="test") == {
      "exact_match": 0.0, "f1": 0.0}
