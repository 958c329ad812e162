"""What the single-prompt code wrote still works: the same logits, old run dirs.

The fixtures (tests/fixtures/README.md) were written by the code before the
prompt bank, when the prompt lengths were fields of `T5Config`. K = 1 with no
`prompt_ids` must be exactly that model, and a run directory it wrote must
evaluate and resume unchanged. The logits were bit-identical on the machine that wrote
them; XLA's CPU code differs by instruction set (an AMD EPYC without AVX-512 is off by up
to 4e-6 on logits of order 1), so the check allows float32 rounding and no more: a wrong
combine, mask or position moves logits by 1e-2 and more.
"""
import os
import shutil

import jax
import numpy as np
import pytest

from prompt_tuning import checkpoints, tree
from prompt_tuning.checkpoints import run_dir
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.eval import prompt_eval
from prompt_tuning.models import Transformer, get_config
from prompt_tuning.prompts import initializers, spec as spec_lib
from prompt_tuning.prompts.spec import DECODER_PROMPT_PATH, PROMPT_PATH
from prompt_tuning.train import loop, optim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
MODEL = "prompt_tuning/assets/demo_t5"  # relative to ROOT, as the old run recorded it
TASK = "taskless_demo_majority"
LENGTHS = {"inputs": 16, "targets": 8}
VARIANTS = {
    "prefix": (spec_lib.encoder_prompt(3), None),
    "after_bos": (spec_lib.encoder_prompt(3, combine="after_bos"), None),
    "suffix": (spec_lib.encoder_prompt(3, combine="suffix"), None),
    "decoder_only": (None, spec_lib.decoder_prompt(2)),
    "both": (spec_lib.encoder_prompt(3), spec_lib.decoder_prompt(2)),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_single_prompt_logits_equal_the_old_models(variant):
  data = np.load(os.path.join(FIXTURES, "legacy_logits.npz"))
  encoder, decoder = VARIANTS[variant]
  flat = {k[len("param:"):]: data[k] for k in data.files if k.startswith("param:")}
  if encoder is None:
    del flat[PROMPT_PATH]
  if decoder is None:
    del flat[DECODER_PROMPT_PATH]
  model = Transformer(get_config("tiny", dropout_rate=0.0), encoder_prompt=encoder,
                      decoder_prompt=decoder)
  logits = jax.jit(model.apply)({"params": tree.unflatten(flat)}, data["encoder_input_tokens"],
                                data["decoder_input_tokens"], data["decoder_target_tokens"])
  np.testing.assert_allclose(np.asarray(logits), data[f"logits:{variant}"], rtol=0, atol=2e-5)


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


@pytest.fixture
def old_run(tmp_path, monkeypatch):
  """A copy of the old run directory, with the working dir where it was made."""
  monkeypatch.chdir(ROOT)
  copy = tmp_path / "legacy_run"
  shutil.copytree(os.path.join(FIXTURES, "legacy_run"), copy)
  return str(copy)


def test_an_old_run_dir_evaluates_to_what_it_logged(old_run):
  best = run_dir.load_best(old_run)
  assert best["step"] == 4
  logged = next(r for r in run_dir.read_metrics(old_run)
                if r["kind"] == "eval" and r["step"] == best["step"])
  results = prompt_eval.evaluate_prompt(
      mixture_or_task_name=TASK, task_feature_lengths=LENGTHS, initial_checkpoint_path=MODEL,
      model_dir=old_run, batch_size=8, num_examples=16, register_tasks=_register)
  for key in (f"{TASK}/accuracy", f"{TASK}/loss_per_token", f"{TASK}/token_accuracy"):
    assert results[key] == pytest.approx(logged[key], rel=1e-6, abs=1e-6), key
  trainable, where = run_dir.read_trainable(old_run, "latest")
  assert where.endswith("checkpoint_4")
  assert trainable[PROMPT_PATH].shape == (4, 64) and trainable[DECODER_PROMPT_PATH].shape == (2, 64)


def test_an_old_run_dir_resumes_to_the_uninterrupted_old_runs_prompts(old_run):
  config, _ = checkpoints.load(MODEL)
  result = loop.train(
      model_dir=old_run, mixture_or_task_name=TASK, task_feature_lengths=LENGTHS,
      train_steps=6, batch_size=8, initial_checkpoint_path=MODEL,
      model_config=config.replace(dropout_rate=0.1), prompt_length=4, decoder_prompt_length=2,
      prompt_init=initializers.sampled_vocab(100), eval_period=2, eval_num_examples=16,
      checkpoint_period=2, log_period=2, register_tasks=_register, progress=False,
      optimizer=optim.paper_adafactor())
  assert result.start_step == 4 and result.step == 6
  want = np.load(os.path.join(FIXTURES, "legacy_run_step6.npz"))
  got, _ = run_dir.read_trainable(old_run, 6)
  np.testing.assert_allclose(got[PROMPT_PATH], want["encoder.prompt.prompt"], rtol=1e-6,
                             atol=1e-6)
  np.testing.assert_allclose(got[DECODER_PROMPT_PATH], want["decoder.prompt.prompt"],
                             rtol=1e-6, atol=1e-6)
  # The old records up to the resumed step are kept, the new ones follow.
  steps = [(r["kind"], r["step"]) for r in run_dir.read_metrics(old_run)]
  assert steps[:5] == [("eval", 0), ("train", 2), ("eval", 2), ("train", 4), ("eval", 4)]
  assert ("train", 6) in steps and ("eval", 6) in steps
