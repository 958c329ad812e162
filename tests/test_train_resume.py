"""Resuming, and what a run decides for itself: the data position, refusals, the best
prompt, bfloat16 frozen weights, a multi-task run's task-id stream. Fast runs on the demo's frozen tiny T5 (no SIGKILL: the
slow test in test_train_loop.py does that from a real process)."""
import os
import re
import shutil
import types

import jax.numpy as jnp
import numpy as np
import pytest
import seqio

import conftest
from prompt_tuning import paths, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.data import inputs
from prompt_tuning.demo import synthetic, tasks as demo_tasks
from prompt_tuning.eval import best as best_lib
from prompt_tuning.prompts import initializers
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.train import loop, optim

MODEL = paths.demo_model_dir()
TASK = "taskless_demo_majority"
LENGTHS = {"inputs": 16, "targets": 8}


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


def _train(model_dir, **overrides):
  kwargs = dict(model_dir=str(model_dir), mixture_or_task_name=TASK,
                task_feature_lengths=LENGTHS, train_steps=6, batch_size=8,
                initial_checkpoint_path=MODEL, prompt_length=4,
                prompt_init=initializers.sampled_vocab(100), eval_period=0,
                checkpoint_period=3, register_tasks=_register, progress=False, log_period=3,
                dropout_rate=0.1, optimizer=optim.paper_adafactor())
  kwargs.update(overrides)
  return loop.train(**kwargs)


def _prompt(model_dir, step):
  return run_dir.read_trainable(str(model_dir), step)[0][PROMPT_PATH]


def test_train_batches_from_k_are_the_stream_after_k_batches():
  _register()
  stream = inputs.train_batches(TASK, LENGTHS, 4, seed=3)
  first = [next(stream) for _ in range(5)]
  later = inputs.train_batches(TASK, LENGTHS, 4, seed=3, start_batch=3)
  for want in first[3:]:
    got = next(later)
    assert sorted(got) == sorted(want)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  # The batches differ from one another, so the comparison can tell an offset.
  assert not np.array_equal(first[0]["encoder_input_tokens"], first[3]["encoder_input_tokens"])


def test_count_tokens_counts_real_input_and_target_tokens():
  batch = {"encoder_input_tokens": np.array([[5, 6, 1, 0], [7, 1, 0, 0]]),    # 3 + 2 real
           "decoder_input_tokens": np.array([[0, 9, 1], [0, 8, 0]]),        # not counted
           "decoder_target_tokens": np.array([[9, 1, 0], [8, 0, 0]])}      # 2 + 1 real
  assert inputs.count_tokens(batch) == 8


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
  straight = _train(tmp_path / "straight")
  assert straight.start_step == 0
  first = _train(tmp_path / "resumed", train_steps=3)
  assert first.step == 3
  second = _train(tmp_path / "resumed")
  assert second.start_step == 3 and second.step == 6
  # Same data after the resume point and the same dropout: the same prompt, exactly.
  np.testing.assert_array_equal(_prompt(tmp_path / "resumed", 6), _prompt(tmp_path / "straight", 6))
  np.testing.assert_array_equal(_prompt(tmp_path / "resumed", 3), _prompt(tmp_path / "straight", 3))
  assert not np.array_equal(_prompt(tmp_path / "straight", 3), _prompt(tmp_path / "straight", 6))


def test_a_resume_with_other_data_or_another_frozen_model_is_refused(tmp_path):
  _train(tmp_path / "run", train_steps=3)
  mtimes = lambda: {name: os.path.getmtime(os.path.join(tmp_path / "run", name))
                    for name in os.listdir(tmp_path / "run") if name != run_dir.LOCK_FILE}
  before = mtimes()
  with pytest.raises(ValueError, match=r"holds a run with data .*'batch_size': 8.*this command "
                                       r"asks for .*'batch_size': 4"):
    _train(tmp_path / "run", batch_size=4)
  with pytest.raises(ValueError, match=r"holds a run with data .*'seed': 0.*'seed': 1"):
    _train(tmp_path / "run", random_seed=1)
  other = shutil.copytree(MODEL, tmp_path / "same_weights_elsewhere")
  with pytest.raises(ValueError, match=r"was trained on INITIAL_CHECKPOINT_PATH="
                                       rf"'{MODEL}', not '{other}'"):
    _train(tmp_path / "run", initial_checkpoint_path=str(other))
  assert mtimes() == before  # nothing written, nothing replaced (the lock aside)
  assert run_dir.numpy_steps(str(tmp_path / "run")) == [3]


def test_the_best_prompt_follows_eval_metric_in_min_mode(tmp_path):
  result = _train(tmp_path, train_steps=8, eval_period=2, eval_num_examples=16,
                  eval_metric="loss_per_token", eval_metric_mode="min", checkpoint_period=2)
  evals = [r for r in result.history if r["kind"] == "eval"]
  key = f"{TASK}/loss_per_token"
  values = [r[key] for r in evals]
  assert len(set(values)) == len(values)  # no ties: the choice is unambiguous
  want = evals[int(np.argmin(values))]
  assert result.best == {"step": want["step"], "metric": key, "value": pytest.approx(want[key])}
  assert run_dir.load_best(str(tmp_path))["step"] == want["step"]
  best = run_dir.read_trainable(str(tmp_path), "best")[0][PROMPT_PATH]
  if want["step"]:  # step 0 has no numpy checkpoint of its own
    np.testing.assert_array_equal(best, _prompt(tmp_path, want["step"]))
  # "max" would keep the worst loss instead: the mode really is read.
  assert want["step"] != evals[int(np.argmax(values))]["step"]


def test_resolve_metric_and_is_better_by_hand():
  results = {"t/loss_per_token": 0.5, "t/token_accuracy": 90.0, "t/accuracy": 70.0,
             "t/f1": 60.0}
  assert best_lib.resolve_metric(results, None, ["t"]) == "t/accuracy"  # the task's first
  assert best_lib.resolve_metric(results, "f1", ["t"]) == "t/f1"
  assert best_lib.resolve_metric(results, "t/loss_per_token", ["t"]) == "t/loss_per_token"
  with pytest.raises(ValueError, match=r"EVAL_METRIC='bleu' is not one of the reported"):
    best_lib.resolve_metric(results, "bleu", ["t"])
  mixed = {"a/accuracy": 1.0, "b/accuracy": 2.0}
  with pytest.raises(ValueError, match="give '<task>/<metric>' for a mixture"):
    best_lib.resolve_metric(mixed, "accuracy", ["a", "b"])
  assert best_lib.is_better(0.4, 0.5, "min") and not best_lib.is_better(0.6, 0.5, "min")
  assert best_lib.is_better(0.6, 0.5, "max") and not best_lib.is_better(0.5, 0.5, "max")
  assert best_lib.is_better(3.0, None, "min")
  assert not best_lib.is_better(float("nan"), None, "max")
  with pytest.raises(ValueError, match="eval_metric_mode='best'"):
    best_lib.is_better(1.0, 0.0, "best")


def test_cast_frozen_holds_the_frozen_weights_in_bfloat16():
  _, frozen = frozen_lib.load_frozen(MODEL)
  half = frozen_lib.cast_frozen(frozen, "bfloat16")
  leaves = tree.flatten(half)
  assert {str(v.dtype) for v in leaves.values()} == {"bfloat16"}
  for path, value in tree.flatten(frozen).items():
    np.testing.assert_array_equal(np.asarray(leaves[path], np.float32),
                                  np.asarray(jnp.asarray(value, jnp.bfloat16), np.float32))
  assert {str(v.dtype) for v in tree.flatten(frozen_lib.cast_frozen(frozen, "float32")).values()
          } == {"float32"}
  with pytest.raises(ValueError, match=r"FROZEN_PARAMS_DTYPE='float16'; expected one of "
                                       r"\('float32', 'bfloat16'\)"):
    frozen_lib.cast_frozen(frozen, "float16")


def test_a_run_with_bfloat16_frozen_weights_trains_a_float32_prompt(tmp_path):
  f32 = _train(tmp_path / "f32", train_steps=3, dropout_rate=0.0)
  b16 = _train(tmp_path / "b16", train_steps=3, dropout_rate=0.0, frozen_params_dtype="bfloat16")
  prompt = _prompt(tmp_path / "b16", 3)
  assert prompt.dtype == np.float32 and np.isfinite(prompt).all()
  loss = lambda r: [x["loss"] for x in r.history if x["kind"] == "train"][0]
  # The same run up to bfloat16 rounding of the weights: close, but not the same numbers.
  assert loss(b16) == pytest.approx(loss(f32), rel=0.05)
  assert loss(b16) != loss(f32)
  assert not np.array_equal(prompt, _prompt(tmp_path / "f32", 3))
  with pytest.raises(ValueError, match="FROZEN_PARAMS_DTYPE='int8'"):
    _train(tmp_path / "bad", frozen_params_dtype="int8")
  assert not os.path.exists(tmp_path / "bad")  # refused before anything is written


# ---------------------------------------------- the task-id stream of a multi-task run
MIXTURE, MIXED = conftest.DEMO_MIXTURE, conftest.DEMO_MIXED


def test_the_task_id_stream_is_the_mixture_stream_with_each_examples_task(demo_mixture):
  ids = {"taskless_demo_count": 1, "taskless_demo_majority": 0}
  with_ids = inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3, task_ids=ids)
  plain = inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3)
  labels = {1: synthetic.TASKS["count"].labels, 0: synthetic.TASKS["majority"].labels}
  seen = set()
  for _ in range(4):
    a, b = next(with_ids), next(plain)
    for k in inputs.MODEL_FEATURES:
      np.testing.assert_array_equal(a[k], b[k])
    assert a["prompt_ids"].shape == (8,) and a["prompt_ids"].dtype == np.int32
    for row, task_id in zip(a["decoder_target_tokens"], a["prompt_ids"]):
      target = demo_mixture.decode([int(t) for t in row if t not in (0, 1)])
      assert target in labels[int(task_id)], (target, task_id)
      seen.add(int(task_id))
  assert seen == {0, 1}
  # Resuming at batch 2 gives batches 2.. with their ids.
  again = inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3, task_ids=ids, start_batch=2)
  first = inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3, task_ids=ids)
  for _ in range(2):
    next(first)
  np.testing.assert_array_equal(next(again)["prompt_ids"], next(first)["prompt_ids"])


def test_a_mixture_task_without_a_prompt_is_refused_by_name(demo_mixture):
  with pytest.raises(ValueError, match=r"tasks \['taskless_demo_majority'\] have no prompt"):
    next(inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3,
                              task_ids={"taskless_demo_count": 0}))


def test_a_task_id_mixture_keeps_the_name_rates_and_sample_function(demo_mixture):
  plain = seqio.get_mixture_or_task(MIXTURE)
  ids = {name: i for i, name in enumerate(MIXED)}
  assert inputs.TaskIdMixture(plain, ids).name == MIXTURE
  # One task (not a mixture) is a mixture of itself.
  task = seqio.get_mixture_or_task(MIXED[1])
  alone = inputs.TaskIdMixture(task, ids)
  assert alone.name == MIXED[1] and [t.name for t in alone.tasks] == [MIXED[1]]
  batch = next(inputs.train_batches(MIXED[1], LENGTHS, 4, seed=1, task_ids=ids))
  np.testing.assert_array_equal(batch["prompt_ids"], [1, 1, 1, 1])
  # A mixture's own sample function is kept: here one that reads only its first task.
  first_only = "test_multitask_first_only"
  seqio.MixtureRegistry.remove(first_only)
  seqio.MixtureRegistry.add(first_only, list(MIXED), default_rate=1.0,
                            sample_fn=_first_dataset)
  batch = next(inputs.train_batches(first_only, LENGTHS, 8, seed=1, task_ids=ids))
  np.testing.assert_array_equal(batch["prompt_ids"], np.zeros(8, np.int32))


def _demo_task_with(demo_name: str, name: str, preprocessors: list) -> str:
  """(Re-)registers `name`: the demo task's source and features, other preprocessors."""
  demo = seqio.TaskRegistry.get(demo_name)
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(name, source=demo.source, output_features=demo.output_features,
                         preprocessors=preprocessors)
  return name


def _trimming_mixture() -> tuple:
  """The demo mixture's tasks, with T5's append_eos_after_trim (it reads the lengths)."""
  names = [_demo_task_with(name, f"test_trim_{name}", [
      seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim])
           for name in MIXED]
  seqio.MixtureRegistry.remove("test_trim_mixture")
  seqio.MixtureRegistry.add("test_trim_mixture", names, default_rate=1.0)
  return "test_trim_mixture", {names[0]: 1, names[1]: 0}


def test_the_task_id_stream_truncates_and_shards_as_the_plain_stream(demo_mixture):
  mixture, ids = _trimming_mixture()
  short = {"inputs": 4, "targets": 2}  # shorter than the demo inputs: 3 tokens + EOS
  firsts = []
  for kw in ({}, {"shard_index": 0, "num_shards": 2}, {"shard_index": 1, "num_shards": 2},
             {"split": "validation", "shuffle": False}):
    a = next(inputs.train_batches(mixture, short, 8, seed=3, task_ids=ids, **kw))
    b = next(inputs.train_batches(mixture, short, 8, seed=3, **kw))
    for k in inputs.MODEL_FEATURES:
      np.testing.assert_array_equal(a[k], b[k], err_msg=f"{kw} {k}")
    assert (a["encoder_input_tokens"][:, -1] == 1).all()
    firsts.append(a["encoder_input_tokens"])
  assert not np.array_equal(firsts[1], firsts[2])  # each host its own shard
  assert not np.array_equal(firsts[0], firsts[3])  # another split, in file order


def test_use_cached_reaches_seqios_cache_with_and_without_task_ids(demo_mixture):
  # A task that must be read from seqio's offline cache, which nobody built here: asked
  # for the cache, seqio looks for it (and does not find it) in both streams.
  _demo_task_with(MIXED[0], "test_cache_only", [
      seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(required=True),
      seqio.preprocessors.append_eos])
  for kw in ({}, {"task_ids": {"test_cache_only": 0}}):
    with pytest.raises(AssertionError, match="'test_cache_only' does not exist in any of the "
                                             "task cache directories"):
      next(inputs.train_batches("test_cache_only", LENGTHS, 8, seed=3, use_cached=True, **kw))


def _first_dataset(datasets, weights=None, seed=None):
  del weights, seed
  return datasets[0]


def test_the_fingerprint_records_num_shards_only_for_several_hosts():
  one = inputs.fingerprint(TASK, "train", LENGTHS, 8, 0)
  assert "num_shards" not in one and one == inputs.fingerprint(TASK, "train", LENGTHS, 8, 0, 1)
  two = inputs.fingerprint(TASK, "train", LENGTHS, 8, 0, num_shards=2)
  assert two == {**one, "num_shards": 2} and isinstance(two["num_shards"], int)


def test_the_stream_repeats_its_split_forever():
  _register()
  # The validation split holds 500 examples: 9 batches of 64 run past its end.
  stream = inputs.train_batches(TASK, LENGTHS, 64, seed=0, split="validation")
  assert len([b for b, _ in zip(stream, range(9))]) == 9


def test_each_host_reads_every_num_shards_th_example_of_the_split():
  _register()
  rows = lambda **kw: np.concatenate([next(s)["encoder_input_tokens"] for s in [
      inputs.train_batches(TASK, LENGTHS, 4, seed=0, shuffle=False, **kw)]])
  whole = np.concatenate([b["encoder_input_tokens"] for b, _ in zip(
      inputs.train_batches(TASK, LENGTHS, 4, seed=0, shuffle=False), range(2))])  # 8 rows
  np.testing.assert_array_equal(rows(num_shards=1), whole[:4])
  np.testing.assert_array_equal(rows(), whole[:4])
  np.testing.assert_array_equal(rows(shard_index=0, num_shards=2), whole[0::2])
  np.testing.assert_array_equal(rows(shard_index=1, num_shards=2), whole[1::2])
  with pytest.raises(ValueError, match="shard_index=2, num_shards=2"):
    next(inputs.train_batches(TASK, LENGTHS, 4, seed=0, shard_index=2, num_shards=2))
  # The split asked for is the split read.
  validation = [ex["inputs"] for ex in synthetic.examples("majority", "validation",
                                                          with_task_word=False)][:4]
  got = next(inputs.train_batches(TASK, LENGTHS, 4, seed=0, shuffle=False,
                                  split="validation"))["encoder_input_tokens"]
  vocab = demo_tasks.demo_vocabulary()
  assert [vocab.decode([int(t) for t in r if t > 1]) for r in got] == validation


def test_tensorflow_is_kept_off_every_gpu_and_tpu_and_a_late_call_is_harmless(monkeypatch):
  # tf.data's host-side reading must not take accelerator memory from JAX. The machines
  # running the tests have no GPU, so the calls into TensorFlow are what is checked.
  tf = inputs.tf
  calls = []
  monkeypatch.setattr(tf.config, "set_visible_devices",
                      lambda devices, device_type=None: calls.append((devices, device_type)))
  inputs.keep_tf_off_accelerators()
  assert calls == [([], "GPU"), ([], "TPU")]
  for error in (RuntimeError("already initialised"), ValueError("no TPU")):
    def refuse(devices, device_type=None, error=error):
      raise error
    monkeypatch.setattr(tf.config, "set_visible_devices", refuse)
    inputs.keep_tf_off_accelerators()  # TensorFlow's refusal is not the caller's problem


def test_an_unknown_task_name_is_refused_naming_the_closest_registered_names():
  _register()
  with pytest.raises(ValueError) as refused:
    inputs.get_task("taskless_demo_majorty")
  message = str(refused.value)
  assert "MIXTURE_OR_TASK_NAME='taskless_demo_majorty' is not a registered" in message
  # difflib's closest names, best first; the count is the registries' own.
  closest = message.split("closest: ")[1].split("]")[0] + "]"
  assert closest.startswith("['taskless_demo_majority'") and closest.count("'") <= 10
  count = len(seqio.TaskRegistry.names()) + len(seqio.MixtureRegistry.names())
  assert f"({count} registered;" in message
  for bad in ("", None):
    with pytest.raises(ValueError, match=r"expected a registered seqio task or mixture name"):
      inputs.get_task(bad)
  assert inputs.get_task(TASK) is seqio.get_mixture_or_task(TASK)


def test_the_closest_names_are_five_at_most_down_to_half_alike(monkeypatch):
  # A registry of known names: seven alike, each less so (one letter more), so the five
  # most alike are named, best first; and one half alike (SequenceMatcher's ratio
  # 2 * 4 / 16 = 0.5), which is still named.
  alike = ["squad_v01" + "x" * k for k in range(1, 8)]
  monkeypatch.setattr(seqio.TaskRegistry, "names", lambda: [*alike, "abcdwxyz"])
  monkeypatch.setattr(seqio.MixtureRegistry, "names", lambda: [])
  with pytest.raises(ValueError) as refused:
    inputs.get_task("squad_v01")
  assert f"(8 registered; closest: {alike[:5]})" in str(refused.value)
  with pytest.raises(ValueError) as refused:
    inputs.get_task("abcdefgh")
  assert "closest: ['abcdwxyz']" in str(refused.value)


@pytest.mark.parametrize("lengths", [
    {"inputs": 0, "targets": 4}, {"inputs": 16, "targets": -1}, {"inputs": 16},
    {"inputs": 16, "targets": 4, "prompt": 2}, {"inputs": 16.0, "targets": 4},
    {"inputs": "16", "targets": 4}, {}, None])
def test_feature_lengths_need_exactly_inputs_and_targets_as_positive_ints(lengths):
  expected = "{'inputs': int > 0, 'targets': int > 0}"
  with pytest.raises(ValueError, match=re.escape(f"TASK_FEATURE_LENGTHS={lengths!r}; "
                                                 f"expected {expected}.")):
    inputs.check_feature_lengths(lengths)


def test_the_shortest_feature_lengths_are_one_token_each():
  given = types.MappingProxyType({"inputs": 1, "targets": 1})
  lengths = inputs.check_feature_lengths(given)
  assert lengths == {"inputs": 1, "targets": 1} and type(lengths) is dict
