"""The prompt-tuning run end to end on the demo's frozen tiny T5 1.1.

The frozen model knows "majority" only with its task word; the taskless task is
learnable by a prompt alone, so these runs show real learning in seconds.
"""
import os
import signal
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import process_fixtures
from prompt_tuning import losses, paths, tree
from prompt_tuning.checkpoints import frozen as frozen_lib
from prompt_tuning.cli import train as train_cli
from prompt_tuning.data import inputs
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.models import Transformer
from prompt_tuning.prompts import export, initializers, spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.train import loop, optim, step as step_lib, trainable as trainable_lib
from prompt_tuning.train.state import TrainState

MODEL = paths.demo_model_dir()
TASK = "taskless_demo_majority"
LENGTHS = {"inputs": 16, "targets": 8}


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


def _train(model_dir, **overrides):
  kwargs = dict(model_dir=str(model_dir), mixture_or_task_name=TASK,
                task_feature_lengths=LENGTHS, train_steps=40, batch_size=16,
                initial_checkpoint_path=MODEL, prompt_length=4,
                prompt_init=initializers.sampled_vocab(100), eval_period=20,
                eval_num_examples=64, register_tasks=_register, progress=False,
                log_period=10, optimizer=optim.paper_adafactor())
  kwargs.update(overrides)
  return loop.train(**kwargs)


def test_a_tiny_run_halves_its_loss_and_keeps_only_the_prompt_state(tmp_path):
  # Trained in the test, not in a fixture: a tool that orders tests by their run time
  # (mutmut) then sees what this test costs.
  run = _train(tmp_path / "run")
  train = [r for r in run.history if r["kind"] == "train"]
  assert train[-1]["loss"] <= 0.5 * train[0]["loss"], (train[0]["loss"], train[-1]["loss"])
  evals = [r for r in run.history if r["kind"] == "eval"]
  assert evals[0]["step"] == 0 and evals[0][f"{TASK}/accuracy"] < 60
  assert run.best["value"] >= 90
  assert os.path.isfile(run.prompt_path)
  assert np.load(run.prompt_path).shape == (4, 64)
  # The run directory holds the prompt's state and the logs, not the frozen weights.
  d = run.model_dir
  assert os.path.isfile(os.path.join(d, "metrics.jsonl"))
  assert os.listdir(os.path.join(d, "train")) and os.listdir(os.path.join(d, "eval"))
  npy = os.listdir(os.path.join(d, "numpy_checkpoints", "checkpoint_40"))
  assert npy == [export.npy_name(PROMPT_PATH)]
  size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(
      os.path.join(d, "checkpoint_40")) for f in fs)
  assert size < os.path.getsize(os.path.join(MODEL, "model.safetensors")) / 4  # no weights


def _setup(regex=None):
  _register()
  config, frozen = frozen_lib.load_frozen(MODEL, dropout_rate=0.1)
  spec = spec_lib.encoder_prompt(4, init=initializers.sampled_vocab(100))
  prompt = initializers.make_prompt(spec, frozen_lib.embedding_table(frozen),
                                    jax.random.PRNGKey(0))
  params = frozen_lib.with_prompts(frozen, {PROMPT_PATH: prompt})
  before = {k: np.array(v) for k, v in tree.flatten(params).items()}
  trainable, frozen = trainable_lib.split(params, regex)
  tx = optim.paper_adafactor()
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(1))
  step = step_lib.jit_train_step(Transformer(config, encoder_prompt=spec), tx,
                                 losses.LossConfig())
  batches = inputs.train_batches(TASK, LENGTHS, 8, seed=0)
  for _ in range(3):
    state, _ = step(state, frozen, next(batches))
  after = tree.flatten(tree.merge(state.trainable, frozen))
  changed = sorted(k for k in before if not np.array_equal(before[k], np.asarray(after[k])))
  return state, before, changed


def test_only_the_prompt_changes_and_only_it_has_optimizer_state():
  state, before, changed = _setup()
  assert changed == [PROMPT_PATH]
  assert sorted(tree.flatten(state.trainable)) == [PROMPT_PATH]
  opt_leaves = jax.tree_util.tree_leaves(state.opt_state)
  prompt_size = before[PROMPT_PATH].size
  assert sum(np.size(x) for x in opt_leaves) <= 2 * prompt_size + 8


def test_widened_trainable_regex_changes_exactly_the_matched_params():
  regex = r"encoder/prompt/prompt|encoder/layers_\d+/pre_mlp_layer_norm/scale"
  _, before, changed = _setup(regex)
  want = sorted(k for k in before if k == PROMPT_PATH or
                (k.startswith("encoder/layers_") and k.endswith("pre_mlp_layer_norm/scale")))
  assert len(want) == 3 and changed == want


def test_bad_inputs_fail_before_anything_is_written(tmp_path):
  with pytest.raises(ValueError, match="INITIAL_CHECKPOINT_PATH"):
    _train(tmp_path / "a", initial_checkpoint_path=str(tmp_path / "nope"))
  with pytest.raises(ValueError, match="MIXTURE_OR_TASK_NAME='taskless_demo_majorty'.*closest"):
    _train(tmp_path / "b", mixture_or_task_name="taskless_demo_majorty")
  with pytest.raises(ValueError, match="3 CLASS_LABELS"):
    _train(tmp_path / "c", prompt_length=2, prompt_init=initializers.class_labels(
        ["animal", "color", "dog"], demo_tasks.demo_vocabulary()))
  np.save(tmp_path / "p.npy", np.zeros((3, 64), np.float32))
  with pytest.raises(ValueError, match=r"prompt has shape \(3, 64\); expected"):
    _train(tmp_path / "d", prompt_init=initializers.from_file(str(tmp_path / "p.npy")))
  for name in "abcd":
    assert not os.path.exists(tmp_path / name / "checkpoint_0")


def test_non_finite_loss_stops_and_names_the_steps(tmp_path):
  nan_after_10 = optax.chain(optim.paper_adafactor(), optax.inject_hyperparams(
      lambda scale: optax.scale(scale))(
          scale=lambda count: jnp.where(count >= 10, jnp.nan, 1.0)))
  with pytest.raises(FloatingPointError, match=r"non-finite loss between steps 1[1-9] and 20"):
    _train(tmp_path, optimizer=nan_after_10, train_steps=40, eval_period=0,
           checkpoint_period=10)
  last = os.path.join(tmp_path, "numpy_checkpoints", "checkpoint_10",
                      export.npy_name(PROMPT_PATH))
  assert np.all(np.isfinite(np.load(last)))
  assert not os.path.exists(os.path.join(tmp_path, "checkpoint_20"))


def _cli(model_dir, steps=30):
  return [sys.executable, "-m", "prompt_tuning.train", "--gin_file=runs/demo.gin",
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}",
          "--gin.EVAL_PERIOD=0", "--gin.BATCH_SIZE=8", "--gin.DROPOUT_RATE=0.1",
          "--gin.loop.train.checkpoint_period=5"]


@pytest.mark.slow
def test_sigkill_then_rerun_ends_with_the_same_prompt(tmp_path, capsys):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  # The uninterrupted reference and the rerun run the same command in this process (one
  # device, the same XLA flags): only the killed run needs a process of its own.
  assert train_cli.run_train(_cli(straight)[3:], progress=False).start_step == 0
  status = process_fixtures.kill_once_written(_cli(killed), env, killed / "checkpoint_10")
  # The kill landed mid-run: killed by the signal, with checkpoints up to 10-25 only.
  assert status == -signal.SIGKILL, status
  numpy_dir = killed / "numpy_checkpoints"
  saved = {name: os.path.getmtime(numpy_dir / name) for name in os.listdir(numpy_dir)}
  last = max(int(name.split("_")[1]) for name in saved)
  assert 10 <= last < 30, saved
  capsys.readouterr()
  assert train_cli.main(_cli(killed)[3:]) == 0
  printed = capsys.readouterr().out
  # The rerun resumed: it says so, from the last complete orbax step (the .npy of
  # a step is written right after it, so that is `last`, or `last + 5` when the
  # kill fell in between), and it did not write the earlier steps again.
  resumed = [s for s in (last, last + 5) if f"resumed {killed} from step {s}\n" in printed]
  assert resumed, printed
  for name, mtime in saved.items():
    if int(name.split("_")[1]) < resumed[0]:
      assert os.path.getmtime(numpy_dir / name) == mtime, name
  name = export.npy_name(PROMPT_PATH)
  a = np.load(straight / "numpy_checkpoints" / "checkpoint_30" / name)
  b = np.load(killed / "numpy_checkpoints" / "checkpoint_30" / name)
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  assert (killed / "config.gin").read_text().count("TRAIN_STEPS") >= 1
