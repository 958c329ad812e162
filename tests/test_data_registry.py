"""Every registered task and mixture yields batches; names, metrics, re-registration, truncation."""
import logging

import numpy as np
import pytest
import seqio
import tensorflow_datasets as tfds

import data_fixtures as fx
from prompt_tuning.data import metrics, tasks, truncation, verbalizers

LENGTHS = {"inputs": 256, "targets": 16}
CONVERTER = seqio.EncDecFeatureConverter(pack=False)
BYTES = seqio.ByteVocabulary()


@pytest.fixture(autouse=True)
def _registered():
  fx.register_bytes()
  yield
  verbalizers.reset_label_words()


def _batch(name, split, lengths=None, size=8):
  ds = seqio.get_dataset(name, lengths or LENGTHS, feature_converter=CONVERTER,
                         dataset_split=split, shuffle=False, num_epochs=1, verbose=False)
  return next(ds.with_options(fx.FAST).batch(size).as_numpy_iterator())


def _check_batch(batch, lengths=None, rows=None):
  """Shapes at the declared lengths, T5 shift, EOS last in every row."""
  lengths = lengths or LENGTHS
  n = len(batch["encoder_input_tokens"])
  assert rows is None or n == rows
  assert batch["encoder_input_tokens"].shape == (n, lengths["inputs"])
  for key in ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights"):
    assert batch[key].shape == (n, lengths["targets"]), key
  targets, dec_in = batch["decoder_target_tokens"], batch["decoder_input_tokens"]
  assert np.all(dec_in[:, 0] == 0)
  nonpad = targets[:, :-1] != 0
  assert np.array_equal(dec_in[:, 1:][nonpad], targets[:, :-1][nonpad])
  for key in ("encoder_input_tokens", "decoder_target_tokens"):
    for row in batch[key]:
      real = row[row != 0]
      assert len(real) and real[-1] == 1, (key, row)  # EOS closes every sequence


def _decode(row) -> str:
  return BYTES.decode([int(t) for t in row])


def test_task_names_follow_the_issue():
  names = tasks.task_names()
  assert len(names) == len(set(names)) == 88 + 13
  for name in ("super_glue_cb_v102", "taskless_super_glue_cb_v102",
               "taskless_super_glue_cb_v102_rank_classification", "super_glue_axb_v102",
               "glue_mnli_mismatched_v200", "taskless_glue_sst2_v200_rank_classification",
               "taskless_glue_mrpc_from_qqp_v200", "super_glue_copa_v102_rank_classification"):
    assert name in names, name
  for name in ("super_glue_record_v102_rank_classification", "glue_stsb_v200_rank_classification",
               "super_glue_wsc_v102_rank_classification"):
    assert name not in names
  registered = set(seqio.TaskRegistry.names())
  assert set(names) <= registered
  assert set(tasks.mixture_names()) <= set(seqio.MixtureRegistry.names())


@pytest.mark.parametrize("name", sorted(fx.EXAMPLES))
def test_every_task_yields_batches_at_declared_lengths_with_the_exact_text(name):
  """Hand-written example -> T5's exact input and target; taskless = minus the task word."""
  spec = tasks.get_spec(name)
  _, _, want_input, want_target = fx.EXAMPLES[name]
  assert not spec.prefix or want_input.startswith(spec.prefix + " ")
  with fx.serve(fx.served_examples()):
    for taskless in ((False, True) if spec.prefix else (False,)):
      batch = _batch(tasks.task_name(name, taskless), fx.eval_split(spec))
      _check_batch(batch, rows=1)
      expected = want_input[len(spec.prefix) + 1:] if taskless else want_input
      assert _decode(batch["encoder_input_tokens"][0]) == expected
      assert _decode(batch["decoder_target_tokens"][0]) == want_target


@pytest.mark.parametrize("name", sorted(n for n in fx.EXAMPLES if tasks.get_spec(n).rank_options))
def test_rank_variants_expand_each_example_over_its_options(name):
  """(Taskless rank variants run in the slow all-splits test.)"""
  spec = tasks.get_spec(name)
  _, raw, want_input, _ = fx.EXAMPLES[name]
  options = ([raw["choice1"], raw["choice2"]] if spec.rank_options == "choices"
             else list(verbalizers.get_verbalizer(spec.label_space).labels))
  with fx.serve(fx.served_examples()):
    batch = _batch(tasks.task_name(name, rank=True), fx.eval_split(spec))
  _check_batch(batch, rows=len(options))
  assert [_decode(r) for r in batch["encoder_input_tokens"]] == [want_input] * len(options)
  assert [_decode(r) for r in batch["decoder_target_tokens"]] == options


def test_rank_classification_trains_on_the_correct_option_only():
  raw = fx.EXAMPLES["super_glue_cb_v102"][1]  # label 0
  served = {("super_glue/cb", s): [raw, dict(raw, label=2, idx=5)] for s in ("train",)}
  with fx.serve(served):
    train = fx.first("taskless_super_glue_cb_v102_rank_classification", "train", n=10)
  assert [fx.text(x["targets_pretokenized"]) for x in train] == ["entailment", "neutral"]
  assert all(x["is_correct"] for x in train)


def test_each_task_carries_its_own_metrics():
  for name in tasks.task_names():
    spec, task = tasks.get_spec(name), seqio.get_mixture_or_task(name)
    if name.endswith(tasks.RANK_SUFFIX):
      assert not task.predict_metric_fns and len(task.score_metric_fns) == 1, name
    else:
      assert list(task.predict_metric_fns) == list(spec.metric_fns), name
      assert not task.score_metric_fns
  assert metrics.gender_parity in tasks.get_spec("super_glue_axg_v102").metric_fns
  assert metrics.multirc in tasks.get_spec("taskless_super_glue_multirc_v102").metric_fns
  assert metrics.record in tasks.get_spec("super_glue_record_v102").metric_fns
  assert not tasks.get_spec("glue_ax_v200").metric_fns  # unlabelled in TFDS


def test_mixtures_hold_their_tasks_at_training_size_rates():
  mix = seqio.get_mixture_or_task("taskless_super_glue_v102")
  rates = {t.name: mix.get_rate(t) for t in mix.tasks}
  assert rates["taskless_super_glue_boolq_v102"] == 9_427.0
  assert rates["taskless_super_glue_wsc_v102"] == 259.0
  assert len(rates) == 8 and all(n.startswith("taskless_") for n in rates)
  zeroshot = seqio.get_mixture_or_task("glue_mrpc_from_qqp_zeroshot_v200")
  assert sorted(t.name for t in zeroshot.tasks) == ["glue_mrpc_from_qqp_v200", "glue_qqp_v200"]
  assert "train" not in seqio.get_mixture_or_task("glue_mrpc_from_qqp_v200").splits


def test_a_mixture_yields_training_batches():
  lengths = {"inputs": 64, "targets": 8}
  with tfds.testing.mock_data(num_examples=3):
    ds = seqio.get_dataset("taskless_super_glue_v102", lengths, feature_converter=CONVERTER,
                           dataset_split="train", shuffle=True, seed=0, num_epochs=1,
                           verbose=False)
    _check_batch(next(ds.batch(4).as_numpy_iterator()), lengths, rows=4)


def _mock_tfds_sample(names):
  """The names the mock-TFDS sweep runs at small size: a task per TFDS dataset (its rank
  variant where it has one: both splits' formatting), one of MRQA's domains (one builder,
  one feature dict), the first taskless task and the first mixture. Each example's text is
  checked exactly for every task by the exact-text test above."""
  mixtures = set(tasks.mixture_names())
  by_source = {}
  for name in names:
    if name in mixtures or name.startswith(tasks.TASKLESS_PREFIX):
      continue
    source = tasks.get_spec(name).tfds_name.split(":")[0]
    source = "mrqa" if source.startswith("mrqa/") else source
    first = by_source.setdefault(source, name)
    if name.endswith(tasks.RANK_SUFFIX) and not first.endswith(tasks.RANK_SUFFIX):
      by_source[source] = name  # the first rank variant replaces its dataset's plain task
  taskless = next(n for n in names if n.startswith(tasks.TASKLESS_PREFIX) and n not in mixtures)
  return {*by_source.values(), taskless, next(n for n in names if n in mixtures)}


def _mock_tfds_cases():
  names = tasks.task_names() + tasks.mixture_names()
  sample = _mock_tfds_sample(names)
  return [pytest.param(n, marks=() if n in sample else pytest.mark.full_size) for n in names]


@pytest.mark.slow
@pytest.mark.parametrize("name", _mock_tfds_cases())
def test_every_task_and_mixture_yields_batches_from_mock_tfds(name):
  """Random examples from TFDS's feature specs at short lengths (so truncating), on the
  first evaluation split, and on the training split (the only one of a mixture) where
  training formats differently: rank classification, ReCoRD, WSC (tasks._format). In CI
  (without --full-size) on the sample _mock_tfds_sample picks."""
  lengths = {"inputs": 32, "targets": 8}
  provider = seqio.get_mixture_or_task(name)
  if isinstance(provider, seqio.Mixture):
    splits = ["train"]
  else:
    evals = [s for s in provider.splits if s != "train"]
    train_differs = any(k in name for k in ("rank_classification", "record", "wsc"))
    splits = [s for s in provider.splits if s == "train" and (train_differs or not evals)]
    splits += evals[:1]
  with tfds.testing.mock_data(num_examples=3):
    for split in splits:
      _check_batch(_batch(name, split, lengths, size=2), lengths)


def test_register_tasks_replaces_everything_with_the_new_vocabulary(tmp_path):
  spm = fx.train_spm(str(tmp_path))
  names = tasks.register_tasks(spm, label_words={"glue_sst2": ["bad", "good"]})
  assert len(names) == len(set(names)) == 88 + 13 + 8
  vocab = seqio.get_mixture_or_task("taskless_glue_sst2_v200").output_features["targets"].vocabulary
  assert isinstance(vocab, seqio.SentencePieceVocabulary)
  assert vocab.sentencepiece_model_file == spm
  assert verbalizers.get_verbalizer("glue_sst2").labels == ("bad", "good")
  again = tasks.register_tasks(BYTES)
  assert again == names
  assert seqio.get_mixture_or_task("glue_sst2_v200").output_features["inputs"].vocabulary is BYTES
  mixed = seqio.get_mixture_or_task("glue_v200")
  assert all(t.output_features["inputs"].vocabulary is BYTES for t in mixed.tasks)


def test_bad_label_words_change_nothing():
  with pytest.raises(ValueError, match=r"super_glue_cb: 2 label words \['yes', 'no'\]; expected 3"):
    tasks.register_tasks(BYTES, label_words={"glue_sst2": ["bad", "good"],
                                             "super_glue_cb": ["yes", "no"]})
  assert verbalizers.get_verbalizer("glue_sst2").labels == ("negative", "positive")


def test_truncation_is_counted_reported_and_keeps_eos(caplog):
  raw = fx.EXAMPLES["glue_sst2_v200"][1]
  long_raw = dict(raw, sentence="a very long and winding review " * 3, idx=2)
  served = {("glue/sst2", "validation"): [raw, long_raw]}
  short_len = len("sst2 sentence: " + raw["sentence"]) + 1  # bytes + EOS
  long_len = len("sst2 sentence: " + long_raw["sentence"]) + 1
  lengths = {"inputs": short_len, "targets": 16}  # the short one fits exactly
  with fx.serve(served), caplog.at_level(logging.WARNING):
    report = truncation.measure_truncation("glue_sst2_v200", lengths, "validation")
    batch = _batch("glue_sst2_v200", "validation", lengths)
  assert report.examples == 2
  assert report.truncated == {"inputs": 1, "targets": 0}
  assert report.longest == {"inputs": long_len, "targets": len("positive") + 1}
  assert report.rate("inputs") == 50.0
  assert "glue_sst2_v200/validation" in caplog.text and "inputs 1 (50.0%" in caplog.text
  _check_batch(batch, lengths, rows=2)
  cut = batch["encoder_input_tokens"][1]
  assert cut[-1] == 1 and np.all(cut != 0)  # trimmed to the length, EOS last
  assert _decode(cut) == ("sst2 sentence: " + long_raw["sentence"])[:short_len - 1]
  assert _decode(batch["encoder_input_tokens"][0]) == "sst2 sentence: " + raw["sentence"]


def test_no_truncation_no_warning_and_bad_arguments(caplog):
  served = {("glue/sst2", "validation"): [fx.EXAMPLES["glue_sst2_v200"][1]]}
  with fx.serve(served), caplog.at_level(logging.WARNING):
    report = truncation.measure_truncation("glue_sst2_v200", LENGTHS, "validation")
  assert report.truncated == {"inputs": 0, "targets": 0}
  assert "glue_sst2_v200" not in caplog.text
  with pytest.raises(ValueError, match="has no split 'dev'"):
    truncation.measure_truncation("glue_sst2_v200", LENGTHS, "dev")
  with pytest.raises(ValueError, match="expected positive ints"):
    truncation.measure_truncation("glue_sst2_v200", {"inputs": 0, "targets": 4}, "validation")
  with pytest.raises(ValueError, match="is a mixture"):
    truncation.measure_truncation("glue_v200", LENGTHS, "validation")


def test_task_table_rows_are_checked():
  with pytest.raises(ValueError, match="x_v1: rank_options='labels'; expected None"):
    tasks.TaskSpec("x_v1", "glue/stsb:2.0.0", {"train": "train"}, "x", kind="stsb")
  with pytest.raises(ValueError, match="x_v1: label_space=None; expected one exactly"):
    tasks.TaskSpec("x_v1", "glue/sst2:2.0.0", {"train": "train"}, "x")
  with pytest.raises(ValueError, match=r"x_v1: kind='squad'; expected one of \('glue', "):
    tasks.TaskSpec("x_v1", "squad:3.0.0", {"train": "train"}, "x", kind="squad")
  with pytest.raises(ValueError, match="'glue_sst3_v200' is not a SuperGLUE/GLUE/SQuAD/MRQA"):
    tasks.get_spec("glue_sst3_v200")
