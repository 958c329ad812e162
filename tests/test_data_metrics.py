"""Metrics vs hand-computed values and sklearn/scipy: illegal labels, grouping, ranking."""
import logging

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from prompt_tuning.data import metrics, postprocessors


def _random(n, classes, seed):
  rng = np.random.default_rng(seed)
  return rng.integers(0, classes, n).tolist(), rng.integers(0, classes, n).tolist()


# ------------------------------------------------------------ classification
def test_accuracy_and_illegal_label_rate_by_hand():
  targets, predictions = [0, 1, 1, 0], [0, 1, -1, 1]
  assert metrics.accuracy(targets, predictions) == {"accuracy": 50.0}
  assert metrics.illegal_label_rate(targets, predictions) == {"illegal_label_rate": 25.0}


def test_binary_f1_by_hand_counts_an_illegal_label_as_the_wrong_class():
  # illegal on a positive -> false negative; on a negative -> false positive:
  # tp 1, fp 1, fn 1 -> F1 = 2 / (2 + 1 + 1)
  assert metrics.f1([1, 1, 0, 0], [1, -1, -1, 0]) == {"f1": 50.0}
  assert metrics.f1([1, 0], [0, 0]) == {"f1": 0.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_f1_matches_sklearn(seed):
  t, p = _random(40, 2, seed)
  p[:5] = [-1] * 5
  mapped = [1 - ti if pi == -1 else pi for ti, pi in zip(t, p)]
  want = 100 * sklearn.metrics.f1_score(t, mapped)
  assert metrics.f1(t, p)["f1"] == pytest.approx(want, abs=1e-9)


def test_macro_f1_by_hand_and_vs_sklearn():
  # class 0: tp 1 fp 0 fn 1 -> 2/3; class 1: tp 1 fp 1 fn 0 -> 2/3; class 2: tp 0 -> 0
  got = metrics.macro_f1(3)([0, 0, 1, 2], [0, 1, 1, -1])["macro_f1"]
  assert got == pytest.approx(100 * (2 / 3 + 2 / 3 + 0) / 3)
  t, p = _random(50, 3, 7)
  p[:6] = [-1] * 6  # sklearn counts an unknown label as a miss of the true class, as we do
  want = 100 * sklearn.metrics.f1_score(t, p, labels=[0, 1, 2], average="macro")
  assert metrics.macro_f1(3)(t, p)["macro_f1"] == pytest.approx(want, abs=1e-9)


def test_matthews_by_hand_and_vs_sklearn():
  # tp 2 tn 1 fp 1 fn 0: (2*1 - 1*0) / sqrt(3 * 2 * 2 * 1)
  got = metrics.matthews_corrcoef([1, 1, 0, 0], [1, 1, 1, 0])["matthews_corrcoef"]
  assert got == pytest.approx(100 * 2 / np.sqrt(12))
  for seed in range(3):
    t, p = _random(60, 2, seed)
    p[:4] = [-1] * 4
    mapped = [1 - ti if pi == -1 else pi for ti, pi in zip(t, p)]
    want = 100 * sklearn.metrics.matthews_corrcoef(t, mapped)
    assert metrics.matthews_corrcoef(t, p)["matthews_corrcoef"] == pytest.approx(want, abs=1e-9)
  assert metrics.matthews_corrcoef([0, 1, 1], [1, 1, 1])["matthews_corrcoef"] == 0.0


def test_unlabelled_targets_and_length_mismatch_raise():
  with pytest.raises(ValueError, match="accuracy: 1 of 2 targets are -1"):
    metrics.accuracy([0, -1], [0, 1])
  with pytest.raises(ValueError, match="f1: 2 targets and 3 predictions"):
    metrics.f1([0, 1], [0, 1, 1])
  with pytest.raises(ValueError, match="expected the same number, > 0"):
    metrics.accuracy([], [])
  with pytest.raises(ValueError, match="record: 1 of 1 targets have no answers"):
    metrics.record([{"group": (0, 0), "answers": []}], ["x"])
  answered = {"group": (0, 0), "answers": ["x"]}
  with pytest.raises(ValueError, match="record: 2 targets and 1 predictions"):
    metrics.record([answered, answered], ["x"])
  with pytest.raises(ValueError, match="record: 0 targets and 0 predictions"):
    metrics.record([], [])


@pytest.mark.parametrize("name,fn", [
    ("accuracy", metrics.accuracy), ("illegal_label_rate", metrics.illegal_label_rate),
    ("f1", metrics.f1), ("macro_f1", lambda t, p: metrics.macro_f1(3)(t, p)),
    ("matthews_corrcoef", metrics.matthews_corrcoef), ("multirc", metrics.multirc),
    ("gender_parity", metrics.gender_parity), ("pearson_corrcoef", metrics.pearson_corrcoef),
    ("spearman_corrcoef", metrics.spearman_corrcoef),
    ("unparsable_rate", metrics.unparsable_rate)])
def test_every_metric_names_itself_when_it_gets_no_examples(name, fn):
  # (macro_f1's metric is made inside the test: a metric built at collection time would
  # escape a mutation tool that swaps the factory's code per test run.)
  with pytest.raises(ValueError, match=f"^{name}: 0 targets and 0 predictions; expected"):
    fn([], [])


def test_class_ids_given_as_text_are_read_as_ints():
  # A task without a postprocessor hands seqio's metrics the decoded text.
  got = metrics.accuracy(["1", "0", "1"], ["1", "1", "-1"])
  assert got == {"accuracy": pytest.approx(100 / 3)}
  assert metrics.f1(["1", "0"], ["1", "-1"]) == {"f1": pytest.approx(100 * 2 / 3)}  # tp 1, fp 1


# -------------------------------------------------------------------- STS-B
def test_correlations_match_scipy():
  rng = np.random.default_rng(3)
  t = rng.uniform(0, 5, 30)
  p = t + rng.normal(0, 1, 30)
  assert metrics.pearson_corrcoef(t, p)["pearson_corrcoef"] == pytest.approx(
      100 * scipy.stats.pearsonr(t, p)[0])
  assert metrics.spearman_corrcoef(t, p)["spearman_corrcoef"] == pytest.approx(
      100 * scipy.stats.spearmanr(t, p)[0])
  assert metrics.pearson_corrcoef([1, 2, 3], [2, 4, 6])["pearson_corrcoef"] == pytest.approx(100)
  # monotone but not linear: Spearman 100, Pearson less
  assert metrics.spearman_corrcoef([1, 2, 3], [1, 10, 100])["spearman_corrcoef"] == 100.0


def test_correlations_need_two_points_and_as_many_predictions_as_targets():
  # Two points always lie on a line: +-100.
  assert metrics.pearson_corrcoef([1, 2], [3, 5])["pearson_corrcoef"] == pytest.approx(100)
  assert metrics.spearman_corrcoef([1, 2], [5, 3])["spearman_corrcoef"] == pytest.approx(-100)
  assert metrics.unparsable_rate([1.0, 2.0], [-1.0, 2.0]) == {"unparsable_rate": 50.0}
  with pytest.raises(ValueError, match=r"^pearson_corrcoef: 1 targets and 1 predictions; "
                                       r"expected the same number, >= 2"):
    metrics.pearson_corrcoef([1.0], [1.0])
  with pytest.raises(ValueError, match="^spearman_corrcoef: 3 targets and 2 predictions"):
    metrics.spearman_corrcoef([1.0, 2.0, 3.0], [1.0, 2.0])


def test_stsb_scores_given_as_text_are_read_as_floats():
  # A task without the score postprocessor hands the metrics the decoded text.
  assert metrics.pearson_corrcoef(["1", "2.5", "3"], ["2", "5", "6"])["pearson_corrcoef"] == \
      pytest.approx(100 * scipy.stats.pearsonr([1, 2.5, 3], [2, 5, 6])[0])
  # ranked as numbers, not as strings ("10" < "9")
  assert metrics.spearman_corrcoef(["9", "10", "11"], ["1", "2", "3"]) == {
      "spearman_corrcoef": pytest.approx(100)}
  assert metrics.unparsable_rate(["1", "2"], ["-1", "2"]) == {"unparsable_rate": 50.0}


def test_stsb_postprocessing_and_unparsable_rate():
  assert postprocessors.score("3.4") == 3.4
  assert postprocessors.score("three") == postprocessors.UNPARSABLE_SCORE
  assert postprocessors.score("nan") == postprocessors.UNPARSABLE_SCORE
  assert postprocessors.score("", example={"label": np.float32(2.25)}, is_target=True) == 2.25
  got = metrics.unparsable_rate([1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 3.0, -1.0])
  assert got == {"unparsable_rate": 50.0}
  got = metrics.unparsable_rate([1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 3.0, 4.0])
  assert got == {"unparsable_rate": 25.0}


# ------------------------------------------------------------------ MultiRC
def test_multirc_groups_answers_by_question():
  q1, q2 = (0, 0), (0, 1)
  targets = [{"group": g, "value": v} for g, v in [(q1, 1), (q1, 0), (q2, 1), (q2, 0), (q2, 1)]]
  preds = [dict(t, value=v) for t, v in zip(targets, [1, 0, 0, 0, 1])]
  # q1 all right, q2 one wrong -> EM 50; F1a over the 5 options: tp 2, fp 0, fn 1 -> 0.8
  assert metrics.multirc(targets, preds) == {"exact_match": 50.0, "f1a": 80.0}
  # an illegal label on a negative option: q1 now wrong, and a false positive
  preds[1] = dict(preds[1], value=-1)
  got = metrics.multirc(targets, preds)
  assert got["exact_match"] == 0.0
  assert got["f1a"] == pytest.approx(100 * 4 / 6)  # tp 2, fp 1, fn 1
  assert metrics.illegal_label_rate(targets, preds) == {"illegal_label_rate": 20.0}


def test_multirc_postprocessor_groups_by_paragraph_and_question():
  post = postprocessors.grouped_class_id("super_glue_multirc", postprocessors.multirc_question)
  ex = {"idx/paragraph": np.int32(4), "idx/question": np.int32(2), "idx/answer": np.int32(9),
        "label": np.int32(1)}
  assert post(b"x", example=ex, is_target=True) == {"group": (4, 2), "value": 1}
  assert post(b"False", example=ex) == {"group": (4, 2), "value": 0}
  assert post(b"maybe", example=ex) == {"group": (4, 2), "value": -1}


# ------------------------------------------------------------------- ReCoRD
def test_record_takes_the_max_over_gold_answers_with_squad_normalisation():
  targets = [{"group": (0, 0), "answers": ["Kim", "Kim Park"]},
             {"group": (0, 1), "answers": ["the Eiffel Tower"]}]
  got = metrics.record(targets, ["kim park.", "Eiffel"])
  # query 1: "kim park" == "kim park" (EM 1); query 2: "eiffel" vs "eiffel tower":
  # EM 0, F1 = 2 * 1 * 0.5 / 1.5
  assert got["exact_match"] == 50.0
  assert got["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
  assert metrics.normalize_answer("  The  Cat's, hat! ") == "cats hat"


def test_record_postprocessor_keeps_every_answer():
  ex = {"idx/passage": np.int32(7), "idx/query": np.int32(2),
        "answers": np.array([b"Kim", b"Kim Park"], dtype=object)}
  assert postprocessors.record_answer(b"Kim", example=ex, is_target=True) == {
      "group": (7, 2), "answers": ["Kim", "Kim Park"]}
  assert postprocessors.record_answer(b"Lee", example=ex) == "Lee"


# --------------------------------------------------------------- WSC, AX-g
@pytest.mark.parametrize("prediction,candidate,want", [
    ("the cat", "The cat", True), ("cat", "the black cat", True),
    ("The black cat", "cat", True), ("the mouse", "The cat", False),
    ("Bob", "Bob's hat", False), ("Bob's hat", "bob's hat.", True), ("", "cat", False)])
def test_wsc_referent_matching(prediction, candidate, want):
  assert postprocessors.referent_matches(prediction, candidate) is want


def test_wsc_postprocessor_scores_the_candidate():
  ex = {"targets_pretokenized": b"The city councilmen", "label": np.int32(1)}
  assert postprocessors.wsc_referent(b"city councilmen", example=ex) == 1
  assert postprocessors.wsc_referent(b"the demonstrators", example=ex) == 0
  assert postprocessors.wsc_referent(b"  ", example=ex) == -1
  assert postprocessors.wsc_referent(b"", example=ex, is_target=True) == 1


def test_gender_parity_by_hand_and_broken_pairs(caplog):
  pairs = [(0, "h0"), (0, "h0"), (1, "h1"), (1, "h1")]
  targets = [{"group": g, "value": 1} for g in pairs]
  preds = [dict(t, value=v) for t, v in zip(targets, [1, 1, 0, 1])]
  assert metrics.gender_parity(targets, preds) == {"gender_parity": 50.0}
  assert metrics.accuracy(targets, preds) == {"accuracy": 75.0}
  broken = [dict(t, group=(i, "h")) for i, t in enumerate(targets)]
  with caplog.at_level(logging.WARNING):
    assert metrics.gender_parity(broken, preds) == {}
  assert caplog.messages == [
      "gender_parity: 4 of 4 pairs are not two examples with one hypothesis; expected AX-g "
      "ids 2k, 2k+1 to be a pair. Parity is not reported."]
  ex = {"idx": np.int32(5), "hypothesis": b"The doctor was kind.", "label": np.int32(0)}
  assert postprocessors.gender_pair(ex) == (2, "The doctor was kind.")


def test_gender_parity_is_the_share_of_pairs_whose_predictions_agree():
  targets = [{"group": (g, "h"), "value": 0} for g in (0, 0, 1, 1, 2, 2)]
  preds = [dict(t, value=v) for t, v in zip(targets, [0, 0, 1, 1, 0, 1])]  # agree, agree, not
  assert metrics.gender_parity(targets, preds) == {"gender_parity": pytest.approx(200 / 3)}


# ------------------------------------------------------ rank classification
def _rank_targets(labels, num_options):
  return [{"example": (i,), "option": o, "num_options": num_options, "label": label}
          for i, label in enumerate(labels) for o in range(num_options)]


def test_rank_classification_takes_the_argmax_per_example(caplog):
  targets = _rank_targets([0, 2, 1], 3)
  scores = [-1.0, -2.0, -3.0,      # example 0 -> option 0 (right)
            -5.0, -4.0, -0.5,      # example 1 -> option 2 (right)
            -0.1, -2.0, -0.1]      # example 2 -> tie 0/2 -> lower option 0 (wrong)
  fn = metrics.rank_classification([metrics.accuracy, metrics.macro_f1(3)])
  with caplog.at_level(logging.WARNING):
    got = fn(targets, scores)
  assert not caplog.records  # every example has all its options: nothing left out
  assert got["accuracy"] == pytest.approx(200 / 3)
  # predictions [0, 2, 0] vs [0, 2, 1]: F1 class0 2/3, class1 0, class2 1
  assert got["macro_f1"] == pytest.approx(100 * (2 / 3 + 0 + 1) / 3)
  # the order of option examples does not matter
  order = np.random.default_rng(0).permutation(len(targets))
  assert fn([targets[i] for i in order], [scores[i] for i in order]) == got
  # scores as an [N, 1] column are the same N scores
  assert fn(targets, np.asarray(scores).reshape(-1, 1)) == got


def test_rank_classification_with_grouped_labels_and_errors(caplog):
  targets = _rank_targets([{"group": (0, 0), "value": 1}, {"group": (0, 0), "value": 0}], 2)
  scores = [-3.0, -1.0, -3.0, -1.0]  # both pick option 1: first right, second wrong
  assert metrics.rank_classification([metrics.multirc])(targets, scores) == {
      "exact_match": 0.0, "f1a": pytest.approx(100 * 2 / 3)}
  # The prediction has the label's form, the chosen option as its value (the docstring's
  # contract, which a metric reading a prediction's group relies on).
  seen = []
  metrics.rank_classification([lambda t, p: seen.append((t, p)) or {}])(targets, scores)
  assert seen == [([{"group": (0, 0), "value": 1}, {"group": (0, 0), "value": 0}],
                   [{"group": (0, 0), "value": 1}, {"group": (0, 0), "value": 1}])]
  fn = metrics.rank_classification([metrics.accuracy])
  with caplog.at_level(logging.WARNING):
    assert fn(_rank_targets([1, 0], 2)[:3], [-1.0, -0.5, -0.2]) == {"accuracy": 100.0}
  assert caplog.messages == [
      "rank_classification: 1 of 2 examples miss some options and are left out."]
  dup = _rank_targets([1], 2) + _rank_targets([1], 2)[:1]
  with pytest.raises(ValueError, match=r"example \(0,\) has option 0 twice"):
    fn(dup, [0.0, 0.0, 0.0])
  with pytest.raises(ValueError, match="one score per option example"):
    fn(_rank_targets([1], 2), [0.0])


def test_rank_target_postprocessor_reads_ids_and_option():
  post = postprocessors.rank_target(postprocessors.class_id("super_glue_cb"))
  ex = {"idx": np.int32(4), "option": np.int32(2), "num_options": np.int32(3),
        "label": np.int32(1), "targets_pretokenized": b"neutral"}
  assert post(b"neutral", example=ex, is_target=True) == {
      "example": (4,), "option": 2, "num_options": 3, "label": 1}
  multirc = {"idx/answer": np.int32(9), "idx/paragraph": np.int32(4),
             "idx/question": np.int32(2)}
  assert postprocessors.example_key(multirc) == (9, 4, 2)


# ------------------------------------------------------------ SQuAD / MRQA
@pytest.mark.parametrize("text,normalised", [
    ("The Eiffel Tower", "eiffel tower"),           # article at the start
    ("U.S.A.!", "usa"),                              # punctuation goes, letters join
    ("  New\tYork \n City ", "new york city"),       # whitespace collapses
    ("Theory of an Anthem", "theory of anthem"),     # articles only as whole words
    ("a, an, the", ""),                              # nothing but articles
    ("", ""),
])
def test_squad_normalisation_by_hand(text, normalised):
  assert metrics.normalize_answer(text) == normalised


def test_squad_em_and_f1_by_hand_take_the_max_over_every_gold_answer():
  targets = [["Denver Broncos", "the Broncos"],      # "broncos" matches the second exactly
             ["Denver Broncos", "Carolina Panthers"],
             ["Broncos"],
             ["The"]]                                # normalises to ""
  predictions = ["Broncos.", "denver", "", ""]
  got = metrics.squad(targets, predictions)
  # EM: 1, 0, 0, 1 ("" == ""). F1: 1; "denver" vs "denver broncos" P 1, R 1/2 -> 2/3
  # (0 against the other answer, so the max is 2/3); an empty prediction shares no
  # token -> 0; "" vs "" shares none either -> 0 (SQuAD v1.1).
  assert got == {"exact_match": 50.0, "f1": pytest.approx(100 * (1 + 2 / 3) / 4)}
  # Which gold answer scores best differs per metric: EM and F1 each take their own max.
  got = metrics.squad([["Super Bowl 50", "the Super Bowl"]], ["the super bowl 50 game"])
  # vs "super bowl 50": P 3/4, R 1 -> 6/7; vs "super bowl": P 2/4, R 1 -> 2/3
  assert got == {"exact_match": 0.0, "f1": pytest.approx(100 * 6 / 7)}


def test_squad_f1_counts_repeated_tokens_once_per_match():
  # pred [cat, cat, sat] vs gold [cat, sat, on, mat]: common {cat: 1, sat: 1} = 2;
  # P 2/3, R 2/4 -> F1 = 2 * (2/3) * (1/2) / (2/3 + 1/2) = 4/7
  assert metrics.squad([["cat sat on the mat"]], ["The cat cat sat"])["f1"] == pytest.approx(
      100 * 4 / 7)


def test_squad_refuses_unlabelled_or_mismatched_inputs():
  with pytest.raises(ValueError, match="squad: 1 of 2 targets have no answers"):
    metrics.squad([["x"], []], ["x", "y"])
  with pytest.raises(ValueError, match="squad: 2 targets and 1 predictions; expected the same"):
    metrics.squad([["x"], ["y"]], ["x"])


def test_answers_postprocessor_keeps_every_gold_answer():
  ex = {"answers": np.array([b"Denver Broncos", b"the Broncos"], dtype=object)}
  assert postprocessors.answers(b"x", example=ex, is_target=True) == [
      "Denver Broncos", "the Broncos"]
  assert postprocessors.answers(b"Broncos", example=ex) == "Broncos"
