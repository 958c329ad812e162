"""A run directory protects itself: one run at a time, and a damaged checkpoint is skipped."""
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from prompt_tuning import paths
from prompt_tuning.checkpoints import run_dir
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.prompts import initializers
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.train import loop, optim

MODEL = paths.demo_model_dir()
TASK = "taskless_demo_majority"


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


def _train(model_dir, **overrides):
  kwargs = dict(model_dir=str(model_dir), mixture_or_task_name=TASK,
                task_feature_lengths={"inputs": 16, "targets": 8}, train_steps=6, batch_size=8,
                initial_checkpoint_path=MODEL, prompt_length=4,
                prompt_init=initializers.sampled_vocab(100), eval_period=0,
                checkpoint_period=2, register_tasks=_register, progress=False, log_period=2,
                optimizer=optim.paper_adafactor())
  kwargs.update(overrides)
  return loop.train(**kwargs)


def test_the_lock_refuses_a_second_holder_and_frees_on_release(tmp_path):
  with run_dir.lock(str(tmp_path)):
    with pytest.raises(RuntimeError, match=rf"MODEL_DIR={tmp_path} is in use by pid "
                                           rf"{os.getpid()} on .* since .* use another"):
      with run_dir.lock(str(tmp_path)):
        pass
  with run_dir.lock(str(tmp_path)):  # released: free again
    pass


def _largest_data_file(step_dir):
  """The largest file of the OCDBT data orbax reads back (checkpoint_<N>/state/d/)."""
  data = os.path.join(step_dir, "state", "d")
  return max((os.path.join(data, f) for f in os.listdir(data)), key=os.path.getsize)


def test_a_damaged_latest_checkpoint_is_skipped_and_nothing_else_is_lost(tmp_path, caplog):
  straight = _train(tmp_path / "straight", train_steps=8)
  _train(tmp_path / "run")
  assert run_dir.Checkpointer(str(tmp_path / "run")).all_steps() == [2, 4, 6]
  damaged = _largest_data_file(tmp_path / "run" / "checkpoint_6")
  with open(damaged, "r+b") as f:  # cut short, as a full disk or a killed copy leaves it
    f.truncate(os.path.getsize(damaged) // 3)
  with caplog.at_level(logging.WARNING):
    resumed = _train(tmp_path / "run", train_steps=8)
  assert resumed.start_step == 4 and resumed.step == 8
  assert any("checkpoint_6" in r.getMessage() and "resuming from step 4" in r.getMessage()
             for r in caplog.records), [r.getMessage() for r in caplog.records]
  # The data position came with checkpoint 4: the run ends where the straight one does.
  got = run_dir.read_trainable(str(tmp_path / "run"), 8)[0][PROMPT_PATH]
  want = run_dir.read_trainable(str(tmp_path / "straight"), 8)[0][PROMPT_PATH]
  np.testing.assert_array_equal(got, want)
  del straight
  assert os.path.isdir(tmp_path / "run" / "checkpoint_6.unreadable")  # kept, out of the way
  # Every .npy export is still there, the re-trained steps rewritten.
  assert run_dir.numpy_steps(str(tmp_path / "run")) == [2, 4, 6, 8]


def test_no_readable_checkpoint_is_an_error_listing_each(tmp_path):
  _train(tmp_path, train_steps=4)
  for step in (2, 4):
    damaged = _largest_data_file(tmp_path / f"checkpoint_{step}")
    with open(damaged, "r+b") as f:
      f.truncate(1)
  with pytest.raises(ValueError, match=r"no checkpoint could be read:\n  .*checkpoint_4: .*\n"
                                       r"  .*checkpoint_2: "):
    _train(tmp_path, train_steps=6)


def _cli(model_dir, steps):
  return [sys.executable, "-m", "prompt_tuning.train", "--gin_file=runs/demo.gin",
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}", "--gin.EVAL_PERIOD=0",
          "--gin.BATCH_SIZE=8", "--gin.loop.train.checkpoint_period=5"]


@pytest.mark.slow
def test_a_second_train_command_on_the_same_dir_refuses_naming_the_first(tmp_path):
  from prompt_tuning.cli import train as train_cli  # pylint: disable=import-outside-toplevel
  first = subprocess.Popen(_cli(tmp_path, 100000), env={**os.environ, "JAX_PLATFORMS": "cpu"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 300
    while not (tmp_path / "checkpoint_5").exists():
      assert first.poll() is None and time.time() < deadline
      time.sleep(0.1)
    with pytest.raises(RuntimeError, match=rf"is in use by pid {first.pid} on "):
      train_cli.run_train(_cli(tmp_path, 10)[3:], progress=False)
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  # Killed, it holds nothing: the same command now resumes the run.
  result = train_cli.run_train(_cli(tmp_path, 10)[3:], progress=False)
  assert result.start_step >= 5 and result.step >= 10
