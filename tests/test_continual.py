"""Model tuning on a sequence of tasks: INITIAL_CHECKPOINT_PATH = a model-tuning run.

The forgetting it measures (benchmarks/continual.py) needs a run tuned on B from
the A-tuned weights; here, that a model-tuning MODEL_DIR loads as a frozen model
with its tuned weights in place, chains, and that a prompt-tuning run is refused.
"""
import os

import numpy as np
import pytest

from prompt_tuning import paths, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.train import loop, optim

MODEL = paths.demo_model_dir()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_tune(model_dir, task, initial_checkpoint_path, steps):
  return loop.train(
      model_dir=str(model_dir), mixture_or_task_name=task,
      task_feature_lengths={"inputs": 16, "targets": 8}, train_steps=steps, batch_size=8,
      initial_checkpoint_path=initial_checkpoint_path, prompt_length=0, trainable_regex=".*",
      eval_period=0, progress=False, log_period=steps,
      register_tasks=lambda: demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary()),
      optimizer=optim.paper_adafactor(1e-3, multiply_by_parameter_scale=True, factored=True,
                                      weight_decay_rate=None))


@pytest.mark.slow  # two model-tuning runs (about 20 s)
def test_a_model_tuning_run_loads_as_the_next_run_s_frozen_model(tmp_path):
  _, base = frozen_lib.load_frozen(MODEL, dropout_rate=0.0)
  run_a = _model_tune(tmp_path / "a", "taskless_demo_majority", MODEL, 2)
  _, tuned = frozen_lib.load_frozen(run_a.model_dir, dropout_rate=0.0)
  base, tuned = tree.flatten(base), tree.flatten(tuned)
  saved = run_dir.read_trainable(run_a.model_dir, "latest")[0]
  assert set(tuned) == set(base) == set(saved)
  for path in base:
    np.testing.assert_array_equal(tuned[path], saved[path])
  changed = [p for p in base if not np.array_equal(base[p], tuned[p])]
  assert len(changed) > len(base) // 2  # A's tuning moved the weights
  # B starts from the A-tuned weights, and a third run from B's loads B's.
  run_b = _model_tune(tmp_path / "b", "taskless_demo_has_cat", run_a.model_dir, 1)
  assert run_dir.read_meta(run_b.model_dir)["initial_checkpoint_path"] == run_a.model_dir
  _, chained = frozen_lib.load_frozen(run_b.model_dir, dropout_rate=0.0)
  saved_b = run_dir.read_trainable(run_b.model_dir, "latest")[0]
  for path, value in tree.flatten(chained).items():
    np.testing.assert_array_equal(value, saved_b[path])
  assert any(not np.array_equal(saved_b[p], saved[p]) for p in saved)


def test_a_prompt_tuning_run_is_no_initial_checkpoint():
  with pytest.raises(ValueError, match=r"is a prompt-tuning run .* holds prompts only\); "
                                       "expected a checkpoint or a model-tuning run"):
    frozen_lib.load_frozen(os.path.join(ROOT, "tests", "fixtures", "legacy_run"))
