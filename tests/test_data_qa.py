"""SQuAD and MRQA tasks: splits, the domain table, mock TFDS through the feature converter.

The exact input and target of every SQuAD/MRQA task are checked with the other
tasks' in test_data_registry.py, their metrics in test_data_eval.py.
"""
import io

import numpy as np
import pytest
import seqio
import tensorflow_datasets as tfds

import data_fixtures as fx
from prompt_tuning.data import metrics, mrqa, show_tasks, tasks

CONVERTER = seqio.EncDecFeatureConverter(pack=False)
LENGTHS = {"inputs": 64, "targets": 8}
QA_TASKS = ["squad_v11_v300"] + [d.task for d in mrqa.DOMAINS]


@pytest.fixture(autouse=True)
def _registered():
  fx.register_bytes()  # QA tasks have no label words to reset afterwards


def test_mrqa_has_the_tfds_builders_domains_and_the_papers_out_of_domain_sets():
  configs = {c.name: sorted(c.data_urls) for c in tfds.builder_cls("mrqa").BUILDER_CONFIGS}
  assert sorted(configs) == sorted(d.config for d in mrqa.DOMAINS)
  for d in mrqa.DOMAINS:
    assert configs[d.config] == (["train", "validation"] if d.in_domain else ["test"]), d
    assert sorted(seqio.get_mixture_or_task(d.task).splits) == configs[d.config]
  assert [mrqa.get_domain(c).title for c in mrqa.OUT_OF_DOMAIN] == [
      "TextbookQA", "BioASQ", "RACE", "RelationExtraction", "DuoRC", "DROP"]
  assert str(tfds.builder_cls("mrqa").VERSION) == mrqa.VERSION
  assert sorted(seqio.get_mixture_or_task("squad_v11_v300").splits) == ["train", "validation"]


def test_qa_tasks_have_no_taskless_or_rank_variant_and_score_with_squad_metrics():
  names = tasks.task_names()
  for name in QA_TASKS:
    assert name in names and tasks.TASKLESS_PREFIX + name not in names
    assert tasks.task_name(name, rank=True) not in names
    task = seqio.get_mixture_or_task(name)
    assert list(task.predict_metric_fns) == [metrics.squad] and not task.score_metric_fns
  assert "taskless_super_glue_cb_v102" in names  # tasks with a task word keep theirs


@pytest.mark.parametrize("name", QA_TASKS)
def test_random_mock_examples_run_through_the_feature_converter(name):
  """TFDS's random examples (its feature specs, any answer count) at short lengths."""
  task = seqio.get_mixture_or_task(name)
  with tfds.testing.mock_data(num_examples=3):
    for split in task.splits:
      ds = seqio.get_dataset(name, LENGTHS, feature_converter=CONVERTER, dataset_split=split,
                             shuffle=False, num_epochs=1, verbose=False)
      batch = next(ds.with_options(fx.FAST).batch(3).as_numpy_iterator())
      assert batch["encoder_input_tokens"].shape == (3, LENGTHS["inputs"]), split
      assert batch["decoder_target_tokens"].shape == (3, LENGTHS["targets"]), split
      for row in batch["encoder_input_tokens"]:
        assert row[row != 0][-1] == 1  # EOS after trimming


def test_training_targets_the_first_answer_and_evaluation_keeps_them_all():
  question, context, answers = fx.QA["textbook_qa"]
  served = {("mrqa/squad", "train"): [fx.mrqa_raw("q0", question, context, answers)]}
  with fx.serve(served):
    (x,) = fx.first("mrqa_squad_v100", "train")
  assert fx.text(x["inputs_pretokenized"]) == f"question: {question} context: {context}"
  assert fx.text(x["targets_pretokenized"]) == "light and water"
  assert [fx.text(a) for a in x["answers"]] == ["light and water", "light"]
  assert fx.text(x["id"]) == "q0"
  served = {("squad/v1.1", "validation"): [fx.EXAMPLES["squad_v11_v300"][1]]}
  with fx.serve(served):
    (x,) = fx.first("squad_v11_v300")
  assert [fx.text(a) for a in x["answers"]] == ["Ada", "by Ada"]
  assert fx.text(x["id"]) == "s0"


def test_an_unlabelled_example_gets_the_unk_target():
  served = {("mrqa/drop", "test"): [fx.mrqa_raw("q0", "Why?", "Because.", [])]}
  with fx.serve(served):
    (x,) = fx.first("mrqa_drop_v100", "test")
  assert fx.text(x["targets_pretokenized"]) == "<unk>" and len(x["answers"]) == 0
  assert np.asarray(x["answers"]).shape == (0,)


def test_domains_by_config_or_title_and_unknown_ones_named_with_a_did_you_mean():
  assert mrqa.get_domain("TextbookQA") is mrqa.get_domain("textbook_qa")
  assert mrqa.get_domain("textbook_qa").task == "mrqa_textbook_qa_v100"
  assert mrqa.get_domain("textbook_qa").tfds_name == "mrqa/textbook_qa:1.0.0"
  assert [d.split for d in mrqa.get_domains(["squad", "drop"])] == ["validation", "test"]
  with pytest.raises(ValueError, match=r"unknown MRQA domain 'textbok_qa'; did you mean "
                                       r"'textbook_qa'\? expected one of \['squad', "):
    mrqa.get_domain("textbok_qa")
  with pytest.raises(ValueError, match=r"unknown MRQA domain 'imdb'; expected one of"):
    mrqa.get_domain("imdb")
  with pytest.raises(ValueError, match=r"name \['drop'\] more than once"):
    mrqa.get_domains(["drop", "DROP"])
  with pytest.raises(ValueError, match="expected a list of MRQA domain names"):
    mrqa.get_domains("drop")


def test_show_tasks_lists_every_mrqa_domain_as_free_text_qa():
  out = io.StringIO()
  assert show_tasks.list_tasks("mrqa_", out) == 0
  lines = [line.split() for line in out.getvalue().splitlines() if line.startswith("task ")]
  assert sorted(line[1] for line in lines) == sorted(d.task for d in mrqa.DOMAINS)
  assert {line[1]: line[2] for line in lines}["mrqa_drop_v100"] == "test"
  assert all(line[3:] == ["(qa:", "free", "text)"] for line in lines)
