"""Format details: ids, split rules, WSC marking, STS-B rounding, labels and words.

The exact input/target of every task is checked in test_data_registry.py.
"""
import pytest
import tensorflow as tf

import data_fixtures as fx
from prompt_tuning.data import preprocessors, tasks, verbalizers


@pytest.fixture(autouse=True)
def _registered():
  fx.register_bytes()
  yield
  verbalizers.reset_label_words()


def test_every_table_row_has_a_handwritten_example():
  assert sorted(fx.EXAMPLES) == sorted(spec.name for spec in tasks.TASKS)


def test_generic_inputs_list_features_sorted_except_multirc_and_wic():
  special = {"super_glue_multirc_v102": ("question", "answer", "paragraph"),
             "super_glue_wic_v102": ("sentence1", "sentence2", "word")}
  checked = 0
  for spec in tasks.TASKS:
    if spec.kind != "glue":
      continue
    want = special.get(spec.name, tuple(sorted(spec.feature_names)))
    assert spec.feature_names == want, spec.name
    checked += 1
  assert checked == 21


def test_ids_labels_and_answers_are_kept_for_the_metrics():
  with fx.serve(fx.served_examples()):
    (multirc,) = fx.first("super_glue_multirc_v102")
    (record,) = fx.first("super_glue_record_v102")
    (axg,) = fx.first("super_glue_axg_v102", "test")
  assert (multirc["idx/paragraph"], multirc["idx/question"], multirc["idx/answer"],
          multirc["label"]) == (3, 1, 0, 1)
  assert (record["idx/passage"], record["idx/query"]) == (7, 2)
  assert [fx.text(a) for a in record["answers"]] == ["Kim", "Kim Park"]
  assert fx.text(axg["hypothesis"]) == "The doctor was kind."


def test_record_trains_on_every_answer_and_evaluates_each_query_once():
  with fx.serve(fx.served_examples()):
    train = fx.first("super_glue_record_v102", "train", n=10)
    validation = fx.first("super_glue_record_v102", "validation", n=10)
  assert [fx.text(x["targets_pretokenized"]) for x in train] == ["Kim", "Kim Park"]
  assert len({fx.text(x["inputs_pretokenized"]) for x in train}) == 1
  assert len(validation) == 1


def test_wsc_trains_only_on_correct_referents():
  good = dict(fx.EXAMPLES["super_glue_wsc_v102"][1])
  wrong = dict(good, span1_text="the mouse", span1_index=3, label=0, idx=10)
  served = {("super_glue/wsc.fixed", s): [good, wrong] for s in ("train", "validation")}
  with fx.serve(served):
    train = fx.first("super_glue_wsc_v102", "train", n=5)
    validation = fx.first("super_glue_wsc_v102", "validation", n=5)
  assert [fx.text(x["targets_pretokenized"]) for x in train] == ["The cat"]
  assert [fx.text(x["targets_pretokenized"]) for x in validation] == ["The cat", "the mouse"]
  assert [int(x["label"]) for x in validation] == [1, 0]


def _mark(text, pronoun, index):
  out = preprocessors._mark_pronoun(tf.constant(text), tf.constant(pronoun), tf.constant(index))
  return out.numpy().decode()


def test_wsc_pronoun_marking_handles_punctuation_case_and_bad_indices():
  assert _mark("Sam thanked Max because Max helped him.", "him", 6) == (
      "Sam thanked Max because Max helped *him*.")
  assert _mark("He said so.", "he", 0) == "*He* said so."
  # index off by one (points at "use"): the nearest matching word is marked
  assert _mark("we want to use it , but", "it", 3) == "we want to use *it* , but"
  # two candidates: the one nearest the index
  assert _mark("it is what it is", "it", 4) == "it is what *it* is"
  # nothing matches: the word at the index is marked as it is
  assert _mark("a b c", "zz", 1) == "a *b* c"


@pytest.mark.parametrize("score,want", [(3.38, "3.4"), (0.0, "0.0"), (5.0, "5.0"),
                                        (2.5, "2.4"), (2.7, "2.8"), (1.09, "1.0")])
def test_stsb_target_is_the_score_rounded_to_a_fifth(score, want):
  # 2.5 * 5 = 12.5 rounds half to even (12), as TensorFlow's round does in T5.
  ds = tf.data.Dataset.from_tensors({"sentence1": "a", "sentence2": "b",
                                     "label": tf.constant(score, tf.float32), "idx": 0})
  (ex,) = list(preprocessors.stsb(ds, prefix="stsb").as_numpy_iterator())
  assert ex["targets"].decode() == want
  assert ex["label"] == pytest.approx(score)


def test_unlabelled_examples_get_unk_targets():
  raw = dict(fx.EXAMPLES["super_glue_boolq_v102"][1], label=-1)
  with fx.serve({("super_glue/boolq", "test"): [raw]}):
    (ex,) = fx.first("super_glue_boolq_v102", "test")
  assert fx.text(ex["targets_pretokenized"]) == "<unk>" and ex["label"] == -1


def test_a_label_outside_the_verbalizer_is_an_error_naming_the_task():
  raw = dict(fx.EXAMPLES["super_glue_cb_v102"][1], label=3)
  with fx.serve({("super_glue/cb", "validation"): [raw]}):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"taskless_super_glue_cb_v102: label outside the verbalizer"):
      fx.first("taskless_super_glue_cb_v102")


def test_overridden_label_words_change_targets_and_postprocessing():
  verbalizers.set_label_words("super_glue_cb", ["yes", "no", "maybe"])
  served = {("super_glue/cb", "validation"): [dict(fx.EXAMPLES["super_glue_cb_v102"][1],
                                                   label=2)]}
  with fx.serve(served):
    (ex,) = fx.first("taskless_super_glue_cb_v102")
  assert fx.text(ex["targets_pretokenized"]) == "maybe"
  post = tasks._postprocessor(tasks.get_spec("super_glue_cb_v102"))
  assert post("maybe") == 2 and post("neutral") == -1
  assert post("whatever", example={"label": 2}, is_target=True) == 2


def test_zero_shot_transfer_answers_in_the_source_tasks_words():
  post = tasks._postprocessor(tasks.get_spec("glue_mrpc_from_qqp_v200"))
  assert post("duplicate") == 1 and post("not_duplicate") == 0
  assert post("equivalent") == -1  # MRPC's own word is not what the QQP prompt says
