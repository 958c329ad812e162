"""The multi-task run (train.multitask_run): refusals, a demo run, its exports, its config.

The bank's modes are tested in test_multitask_prompts.py and the task-id stream in
test_train_resume.py (both in the mutation run's selection). Reference here: a
trained multi-task bank against its per-task exports served one at a time.
"""
import json
import os

import numpy as np
import pytest
import seqio

import conftest
from prompt_tuning import paths, tree
from prompt_tuning.demo import synthetic
from prompt_tuning.prompts import multitask as mt

LENGTHS = {"inputs": 16, "targets": 8}
MIXTURE, MIXED = conftest.DEMO_MIXTURE, conftest.DEMO_MIXED


def test_a_multitask_run_refuses_a_mixture_task_without_a_prompt(demo_mixture, tmp_path):
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
def test_a_multitask_demo_run_learns_each_task_and_its_exports_serve_alone(demo_mixture,
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


def test_the_demo_multitask_config_gives_every_mixture_task_a_prompt(demo_mixture):
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
