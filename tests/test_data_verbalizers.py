"""Verbalizers: TFDS defaults, validation, lookups, overrides and name resolution."""
import pytest
import tensorflow_datasets as tfds

from prompt_tuning.data import verbalizers
from prompt_tuning.data.verbalizers import Verbalizer


@pytest.fixture(autouse=True)
def _reset():
  verbalizers.reset_label_words()
  yield
  verbalizers.reset_label_words()


def _tfds_label_names(space: str) -> tuple:
  """ClassLabel names of the TFDS builder config (read from TFDS's code, offline)."""
  benchmark = "super_glue" if space.startswith("super_glue_") else "glue"
  config = tfds.builder_cls(benchmark).builder_configs[space[len(benchmark) + 1:]]
  return tuple(config.label_classes)


def test_default_words_are_the_tfds_label_names():
  assert len(verbalizers.LABEL_WORDS) == 14
  for space, words in verbalizers.LABEL_WORDS.items():
    assert words == _tfds_label_names(space), space


@pytest.mark.parametrize("labels,match", [
    ((), "super_glue_cb: empty verbalizer"),
    (("yes", "no", "yes"), r"repeat \['yes'\]"),
    (("yes", ""), "label word 1 is ''"),
    (("yes", " no"), "no leading or trailing whitespace"),
    (("yes", "<unk>"), "target of unlabelled examples"),
    ("yes", "expected a sequence of strings"),
])
def test_bad_verbalizers_are_rejected_naming_the_task(labels, match):
  with pytest.raises(ValueError, match=match):
    Verbalizer("super_glue_cb", labels)


def test_to_text_and_to_class():
  v = Verbalizer("glue_sst2", ["very bad", "good"])
  assert v.labels == ("very bad", "good") and v.num_classes == 2
  assert v.to_text(0) == "very bad"
  assert v.to_class(" very bad \n") == 0 and v.to_class(b"good") == 1
  assert v.to_class("Good") == -1 and v.to_class("") == -1 and v.to_class("bad") == -1
  with pytest.raises(ValueError, match=r"glue_sst2: class id 2 is outside the verbalizer"):
    v.to_text(2)
  with pytest.raises(ValueError, match="class id -1"):
    v.to_text(-1)


def test_task_names_resolve_to_their_label_space():
  for name, space in [("taskless_super_glue_cb_v102", "super_glue_cb"),
                      ("super_glue_cb_v102_rank_classification", "super_glue_cb"),
                      ("taskless_super_glue_axb_v102", "super_glue_rte"),
                      ("glue_mnli_mismatched_v200", "glue_mnli"),
                      ("glue_ax_v200", "glue_mnli"),
                      ("taskless_glue_mrpc_from_qqp_v200_rank_classification", "glue_qqp"),
                      ("glue_sst2", "glue_sst2")]:
    assert verbalizers.label_space(name) == space, name
  with pytest.raises(ValueError, match="super_glue_record_v102: no verbalizer; its targets are"):
    verbalizers.get_verbalizer("super_glue_record_v102")
  with pytest.raises(ValueError, match="unknown classification task"):
    verbalizers.get_verbalizer("glue_sts")
  assert not verbalizers.has_verbalizer("glue_stsb_v200")
  assert verbalizers.has_verbalizer("taskless_glue_qnli_v200")


def test_overrides_reach_every_name_of_the_label_space():
  verbalizers.set_label_words("taskless_super_glue_cb_v102", ["yes", "no", "maybe"])
  assert verbalizers.get_verbalizer("super_glue_cb_v102_rank_classification").labels == (
      "yes", "no", "maybe")
  assert verbalizers.class_labels("super_glue_cb") == ["yes", "no", "maybe"]
  verbalizers.set_label_words("super_glue_rte", ["yes", "no"])
  assert verbalizers.get_verbalizer("super_glue_axg_v102").labels == ("yes", "no")
  verbalizers.reset_label_words("super_glue_cb")
  assert verbalizers.class_labels("super_glue_cb") == ["entailment", "contradiction", "neutral"]
  assert verbalizers.class_labels("super_glue_rte") == ["yes", "no"]


def test_bad_overrides_are_rejected_and_change_nothing():
  with pytest.raises(ValueError, match=r"super_glue_cb: 2 label words \['yes', 'no'\]; expected "
                                       r"3, one per class \['entailment'"):
    verbalizers.set_label_words("super_glue_cb", ["yes", "no"])
  with pytest.raises(ValueError, match="evaluated in super_glue_rte's label space"):
    verbalizers.set_label_words("super_glue_axb_v102", ["yes", "no"])
  with pytest.raises(ValueError, match="repeat"):
    verbalizers.set_label_words("glue_sst2", ["ok", "ok"])
  assert verbalizers.class_labels("super_glue_cb") == ["entailment", "contradiction", "neutral"]
  assert verbalizers.class_labels("glue_sst2") == ["negative", "positive"]
