"""Model tuning (configs/methods/model_tuning*.gin): every weight, or the top layers only.

The demo's frozen model has 2 layers per stack; the expected trainable sets
are written out by hand.
"""
import os

import numpy as np
import pytest

from prompt_tuning import paths, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.models import scan
from prompt_tuning.prompts import export
from prompt_tuning.train import loop, optim, trainable as trainable_lib

MODEL = paths.demo_model_dir()
TASK = "taskless_demo_majority"


@pytest.fixture(scope="module")
def frozen():
  return frozen_lib.load_frozen(MODEL, dropout_rate=0.0)


def test_top_layers_are_the_last_layers_the_final_norms_and_the_head(frozen):
  config, params = frozen
  regex = trainable_lib.top_layers_regex(params, 1)
  chosen = set(trainable_lib.trainable_paths(params, regex))
  flat = tree.flatten(params)
  want = {p for p in flat if p.startswith(("encoder/layers_1/", "decoder/layers_1/",
                                            "encoder/encoder_norm/", "decoder/decoder_norm/",
                                            "decoder/logits_dense/"))}
  assert chosen == want and "token_embedder/embedding" not in chosen
  assert not any("layers_0" in p for p in chosen)
  both = set(trainable_lib.trainable_paths(params, trainable_lib.top_layers_regex(params, 2)))
  assert both == want | {p for p in flat if "/layers_0/" in p}


@pytest.mark.parametrize("top", [0, 3, "1", True])
def test_top_layers_out_of_range_are_refused(frozen, top):
  with pytest.raises(ValueError, match=r"TOP_LAYERS=.*expected an int in \[1, 2\]"):
    trainable_lib.top_layers_regex(frozen[1], top)


def test_top_layers_of_stacked_layers_are_refused(frozen):
  config, params = frozen
  stacked = scan.stack_layers(params, config.replace(scan_layers=True))
  with pytest.raises(ValueError, match="SCAN_LAYERS=True"):
    trainable_lib.top_layers_regex(stacked, 1)


def _train(model_dir, **overrides):
  kwargs = dict(model_dir=str(model_dir), mixture_or_task_name=TASK,
                task_feature_lengths={"inputs": 16, "targets": 8}, train_steps=6,
                batch_size=8, initial_checkpoint_path=MODEL, prompt_length=0,
                eval_period=3, eval_num_examples=16, progress=False, log_period=3,
                register_tasks=lambda: demo_tasks.register_demo_tasks(
                    demo_tasks.demo_vocabulary()),
                optimizer=optim.paper_adafactor(1e-3, multiply_by_parameter_scale=True,
                                                factored=True, weight_decay_rate=None))
  kwargs.update(overrides)
  return loop.train(**kwargs)


def test_top_layer_tuning_trains_those_layers_and_nothing_else(tmp_path, frozen):
  _, pretrained = frozen
  regex = lambda params: trainable_lib.top_layers_regex(params, 1)
  result = _train(tmp_path / "top", trainable_regex=regex)
  step = result.step
  saved = {name: np.load(os.path.join(run_dir.numpy_dir(result.model_dir, step), name))
           for name in os.listdir(run_dir.numpy_dir(result.model_dir, step))}
  flat = tree.flatten(pretrained)
  names = {export.npy_name(p): p for p in flat}
  assert {names[n] for n in saved} == set(
      trainable_lib.trainable_paths(pretrained, trainable_lib.top_layers_regex(pretrained, 1)))
  changed = [names[n] for n, v in saved.items() if not np.array_equal(v, flat[names[n]])]
  assert len(changed) > len(saved) // 2  # the trained layers moved
  records = run_dir.read_metrics(result.model_dir)
  counts = next(r for r in records if r["kind"] == "params")
  assert counts["trainable_params"] == sum(v.size for v in saved.values())
  assert counts["model_params"] == sum(np.size(v) for v in flat.values())


def test_no_prompt_and_no_regex_is_still_refused(tmp_path):
  with pytest.raises(ValueError, match="PROMPT_LENGTH=0 and DECODER_PROMPT_LENGTH=0"):
    _train(tmp_path / "none")


@pytest.mark.parametrize("method", ["model_tuning", "lora"])
def test_prompt_eval_evaluates_a_method_run_as_it_logged(tmp_path, frozen, method):
  # `prompt-tuning eval` on a run without soft prompts: the tuned weights, or the
  # method recorded in the run's checkpoints, give the metrics the run logged.
  from prompt_tuning.eval import prompt_eval
  from prompt_tuning.models.adapters import AdapterSpec, LoraSpec
  kwargs = ({"trainable_regex": ".*"} if method == "model_tuning" else
            {"adapters": AdapterSpec(lora=LoraSpec()),
             "optimizer": optim.paper_adafactor(1e-2)})
  result = _train(tmp_path / method, **kwargs)
  if method == "model_tuning":  # it trains every weight, without a prompt
    flat = tree.flatten(frozen[1])
    saved = os.listdir(run_dir.numpy_dir(result.model_dir, result.step))
    assert sorted(saved) == sorted(export.npy_name(p) for p in flat)
    assert not any(n.startswith("encoder.prompt") for n in saved)
    counts = next(r for r in run_dir.read_metrics(result.model_dir) if r["kind"] == "params")
    assert counts["trainable_params"] == counts["model_params"]
  best = run_dir.load_best(result.model_dir)
  logged = next(r for r in run_dir.read_metrics(result.model_dir)
                if r["kind"] == "eval" and r["step"] == best["step"])
  got = prompt_eval.evaluate_prompt(
      mixture_or_task_name=TASK, task_feature_lengths={"inputs": 16, "targets": 8},
      initial_checkpoint_path=MODEL, model_dir=result.model_dir, batch_size=8,
      num_examples=16, register_tasks=lambda: demo_tasks.register_demo_tasks(
          demo_tasks.demo_vocabulary()))
  assert got[f"{TASK}/accuracy"] == logged[f"{TASK}/accuracy"]
  assert abs(got[f"{TASK}/loss_per_token"] - logged[f"{TASK}/loss_per_token"]) < 1e-4
  # Without the run's record the LoRA arrays alone are refused, naming where to read them.
  if method == "lora":
    with pytest.raises(ValueError, match="nothing to evaluate.*read from their run's MODEL_DIR"):
      prompt_eval.evaluate_prompt(
          mixture_or_task_name=TASK, task_feature_lengths={"inputs": 16, "targets": 8},
          initial_checkpoint_path=MODEL, prompt_file=run_dir.best_dir(result.model_dir),
          batch_size=8, num_examples=16)
