"""Multi-task prompts (prompts.multitask, data.inputs task ids, the multi-task run).

References: each mode's bank is compared with the same prompts built by hand in
numpy (loops over tasks and positions, not the library's einsums); the
task-id stream with the plain seqio mixture stream and with the synthetic
tasks' own targets; a trained multi-task bank with its per-task exports
served one at a time.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio

from prompt_tuning import paths, tree
from prompt_tuning.data import inputs
from prompt_tuning.demo import synthetic, tasks as demo_tasks
from prompt_tuning.prompts import multitask as mt, prompt as prompt_lib, spec as spec_lib

TASKS = ("a", "b", "c")
D = 6


def _params(spec, length=4, seed=0):
  rng = np.random.default_rng(seed)
  return {k: rng.normal(size=s).astype(np.float32) for k, s in spec.shapes(length, D).items()}


@pytest.mark.parametrize("mode", mt.MODES)
def test_each_mode_composes_the_prompts_built_by_hand(mode):
  spec = mt.MultiTaskSpec(TASKS, mode, task_length=2, shared_features=3 if mode == "project"
                          else None, rank=2)
  p = _params(spec)
  got = np.asarray(mt.compose(spec, p))
  want = []
  for k in range(len(TASKS)):
    if mode == "separate":
      one = p["prompt"][k]
    elif mode == "add":
      one = p["shared_prompt"] + p["task_prompts"][k]
    elif mode == "concat":
      one = np.concatenate([p["shared_prompt"], p["task_prompts"][k]])
    elif mode == "project":  # each shared position through task k's affine map
      one = np.stack([row @ p["task_kernel"][k] + p["task_bias"][k]
                      for row in p["shared_prompt"]])
    else:  # low_rank: elementwise times the rank-2 product
      cols, rows = p["task_cols"][k], p["task_rows"][k]
      one = p["shared_prompt"] * np.array([[sum(cols[i, r] * rows[r, j] for r in range(2))
                                            for j in range(D)] for i in range(4)])
    want.append(one)
  np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-6)
  assert got.shape == (3, spec.prompt_length(4), D)
  assert spec.shared_length_of(spec.prompt_length(4)) == 4
  prompts = mt.task_prompts(spec, p)
  assert list(prompts) == list(TASKS)
  np.testing.assert_array_equal(prompts["b"], got[1])


def _fill(rng, shape, table):
  return np.asarray(jax.random.uniform(rng, shape, minval=-0.5, maxval=0.5))


@pytest.mark.parametrize("mode", ["add", "project", "low_rank"])
def test_every_task_starts_at_the_shared_prompt(mode):
  spec = mt.MultiTaskSpec(TASKS, mode, rank=3)
  table = np.random.default_rng(1).normal(size=(30, D)).astype(np.float32)
  p = mt.init_params(spec, 4, _fill, jax.random.PRNGKey(0), table)
  bank = np.asarray(mt.compose(spec, p))
  for k in range(3):
    np.testing.assert_allclose(bank[k], p["shared_prompt"], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(p["shared_prompt"], _fill(jax.random.PRNGKey(0), (4, D), table))


def test_concat_and_separate_start_with_distinct_task_prompts():
  table = np.zeros((30, D), np.float32)
  for mode in ("concat", "separate"):
    spec = mt.MultiTaskSpec(TASKS, mode, task_length=2)
    bank = np.asarray(mt.compose(spec, mt.init_params(spec, 4, _fill, jax.random.PRNGKey(0),
                                                      table)))
    assert bank.shape == (3, spec.prompt_length(4), D)
    assert not np.allclose(bank[0], bank[1]) and not np.allclose(bank[1], bank[2])


def test_the_model_prompt_trains_shared_and_only_the_selected_tasks():
  spec = spec_lib.multitask_prompt(mt.MultiTaskSpec(TASKS, "add"), 4)
  module = prompt_lib.Prompt(spec)
  params = {k: jnp.asarray(v) for k, v in _params(spec.multitask).items()}
  ids = jnp.array([0, 2, 0])

  def loss(p):
    return jnp.sum(module.apply({"params": p}, D, 3, ids) ** 2)
  grads = jax.grad(loss)(params)
  assert np.all(np.asarray(grads["task_prompts"][1]) == 0)  # no example of task b
  assert np.any(np.asarray(grads["task_prompts"][0]) != 0)
  assert np.any(np.asarray(grads["task_prompts"][2]) != 0)
  assert np.any(np.asarray(grads["shared_prompt"]) != 0)
  out = module.apply({"params": params}, D, 3, ids)
  np.testing.assert_allclose(out[1], params["shared_prompt"] + params["task_prompts"][2],
                             rtol=1e-6)
  # Params of another mode are refused by name.
  with pytest.raises(ValueError, match="expected the 'add' multi-task params"):
    module.apply({"params": {"prompt": jnp.zeros((3, 4, D))}}, D, 3, ids)


def test_bad_multitask_specs_are_refused_by_name():
  with pytest.raises(ValueError, match=r"names \['a'\] more than once"):
    mt.MultiTaskSpec(("a", "b", "a"))
  with pytest.raises(ValueError, match="mode='sum'; expected one of"):
    mt.MultiTaskSpec(TASKS, "sum")
  with pytest.raises(ValueError, match="rank=0"):
    mt.MultiTaskSpec(TASKS, "low_rank", rank=0)
  with pytest.raises(ValueError, match="expected one or more task names"):
    mt.MultiTaskSpec(())
  with pytest.raises(ValueError, match="one prompt per task"):
    spec_lib.PromptSpec(length=4, num_prompts=2, multitask=mt.MultiTaskSpec(TASKS))
  spec = mt.MultiTaskSpec(TASKS)
  with pytest.raises(ValueError, match=r"task 'd' has no prompt .* \['a', 'b', 'c'\]"):
    spec.task_id("d")
  with pytest.raises(ValueError, match=r"tasks \['d'\] have no prompt"):
    mt.tasks_of(["a", "d"], spec, "MIXTURE_OR_TASK_NAME='m'")
  good = _params(spec)
  with pytest.raises(ValueError, match="params of shapes"):
    spec.check({**good, "task_prompts": good["task_prompts"][:2]}, D)
  assert mt.MultiTaskSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


# ------------------------------------------------------------------ the data stream
MIXTURE = "test_multitask_demo_mixture"
MIXED = ("taskless_demo_count", "taskless_demo_majority")
LENGTHS = {"inputs": 16, "targets": 8}


@pytest.fixture(scope="module")
def demo_vocab():
  vocab = demo_tasks.demo_vocabulary()
  demo_tasks.register_demo_tasks(vocab)
  seqio.MixtureRegistry.remove(MIXTURE)
  seqio.MixtureRegistry.add(MIXTURE, list(MIXED), default_rate=1.0)
  return vocab


def test_the_task_id_stream_is_the_mixture_stream_with_each_examples_task(demo_vocab):
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
      target = demo_vocab.decode([int(t) for t in row if t not in (0, 1)])
      assert target in labels[int(task_id)], (target, task_id)
      seen.add(int(task_id))
  assert seen == {0, 1}
  # Resuming at batch 2 gives batches 2.. with their ids.
  again = inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3, task_ids=ids, start_batch=2)
  first = inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3, task_ids=ids)
  for _ in range(2):
    next(first)
  np.testing.assert_array_equal(next(again)["prompt_ids"], next(first)["prompt_ids"])


def test_a_mixture_task_without_a_prompt_is_refused_by_name(demo_vocab):
  with pytest.raises(ValueError, match=r"tasks \['taskless_demo_majority'\] have no prompt"):
    next(inputs.train_batches(MIXTURE, LENGTHS, 8, seed=3,
                              task_ids={"taskless_demo_count": 0}))


def test_a_multitask_run_refuses_a_mixture_task_without_a_prompt(demo_vocab, tmp_path):
  from prompt_tuning.train import loop  # pylint: disable=import-outside-toplevel
  spec = mt.MultiTaskSpec(("taskless_demo_count", "taskless_demo_first"))
  with pytest.raises(ValueError, match=r"\['taskless_demo_majority'\] have no prompt"):
    loop.train(model_dir=str(tmp_path / "run"), mixture_or_task_name=MIXTURE,
               task_feature_lengths=LENGTHS, train_steps=1, batch_size=4,
               initial_checkpoint_path=paths.demo_model_dir(), prompt_length=4,
               multitask=spec, progress=False)
  assert not os.path.exists(tmp_path / "run" / "config.gin")
  with pytest.raises(ValueError, match="DECODER_PROMPT_LENGTH=2"):
    loop.train(model_dir=str(tmp_path / "run"), mixture_or_task_name=MIXTURE,
               task_feature_lengths=LENGTHS, train_steps=1, batch_size=4,
               initial_checkpoint_path=paths.demo_model_dir(), prompt_length=4,
               decoder_prompt_length=2, multitask=mt.MultiTaskSpec(MIXED), progress=False)


# ------------------------------------------------------------ a multi-task demo run
@pytest.mark.slow
def test_a_multitask_demo_run_learns_each_task_and_its_exports_serve_alone(demo_vocab,
                                                                           tmp_path):
  from prompt_tuning.infer import predictor  # pylint: disable=import-outside-toplevel
  from prompt_tuning.prompts import initializers  # pylint: disable=import-outside-toplevel
  from prompt_tuning.train import loop  # pylint: disable=import-outside-toplevel
  spec = mt.MultiTaskSpec(MIXED, "add")
  result = loop.train(
      model_dir=str(tmp_path / "run"), mixture_or_task_name=MIXTURE,
      task_feature_lengths=LENGTHS, train_steps=150, batch_size=32,
      initial_checkpoint_path=paths.demo_model_dir(), prompt_length=8,
      prompt_init=initializers.sampled_vocab(128), multitask=spec, eval_period=75,
      eval_num_examples=200, progress=False, register_tasks=None)
  # Both tasks at the demo's single-task bar (held-out accuracy >= 90%).
  for task in MIXED:
    assert result.last_eval[f"{task}/accuracy"] >= 90.0, result.last_eval
  assert result.best["metric"] == "mean/accuracy"
  assert sorted(os.listdir(result.task_prompts_dir)) == sorted(f"{t}.npy" for t in MIXED)
  # The exports are the bank the best checkpoint composes.
  best = {k.split("/")[-1]: np.load(os.path.join(tmp_path, "run", "best", k.replace("/", ".")
                                                 + ".npy"))
          for k in ("encoder/prompt/shared_prompt", "encoder/prompt/task_prompts")}
  for i, task in enumerate(MIXED):
    np.testing.assert_array_equal(np.load(os.path.join(result.task_prompts_dir, f"{task}.npy")),
                                  np.asarray(mt.compose(spec, best))[i])
  # Mixed-task infer over the mixture with the whole bank == each task with its own file.
  common = dict(initial_checkpoint_path=paths.demo_model_dir(), task_feature_lengths=LENGTHS,
                split="validation", num_examples=40, batch_size=16, progress=False)
  out = tmp_path / "mixed.jsonl"
  predictor.infer(prompts=result.task_prompts_dir, output_file=str(out),
                  mixture_or_task_name=MIXTURE, **common)
  mixed = [json.loads(line) for line in open(out)]
  for task in MIXED:
    alone = tmp_path / f"{task}.jsonl"
    predictor.infer(prompts=os.path.join(result.task_prompts_dir, f"{task}.npy"),
                    output_file=str(alone), mixture_or_task_name=task, **common)
    rows = [json.loads(line) for line in open(alone)]
    ours = [r for r in mixed if r["prompt"] == task]
    assert ours and [r["prediction"] for r in ours] == [r["prediction"] for r in
                                                         rows[:len(ours)]]
  # Each task's prompt exports as a PEFT adapter like any single prompt.
  from prompt_tuning.cli import export as export_cli  # pylint: disable=import-outside-toplevel
  peft_dir = export_cli.export_prompt(
      output_dir=str(tmp_path / "peft"), fmt="peft",
      prompt_file=os.path.join(result.task_prompts_dir, f"{MIXED[0]}.npy"),
      base_model_name_or_path=paths.demo_model_dir())
  from prompt_tuning.prompts import peft  # pylint: disable=import-outside-toplevel
  assert peft.is_adapter_dir(peft_dir)
  assert tree.count({"p": np.load(os.path.join(result.task_prompts_dir,
                                               f"{MIXED[0]}.npy"))}) == 8 * best[
      "shared_prompt"].shape[1]


def test_the_demo_multitask_config_gives_every_mixture_task_a_prompt(demo_vocab):
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.cli import flags  # pylint: disable=import-outside-toplevel
  flags.setup_gin(flags.parse_flags(["--gin_file=runs/demo_multitask.gin",
                                     "--gin.MODEL_DIR='/tmp/x'"]))
  try:
    spec = gin.query_parameter("%MULTITASK").scoped_configurable_fn()
    mixture = seqio.get_mixture_or_task(gin.query_parameter("%MIXTURE_OR_TASK_NAME"))
    assert sorted(spec.tasks) == sorted(t.name for t in mixture.tasks)
    assert spec.mode == "add" and len(spec.tasks) == len(synthetic.TASKS)
  finally:
    gin.clear_config()
