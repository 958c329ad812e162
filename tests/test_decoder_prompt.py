"""The optional decoder prompt: its param, teacher forcing vs Hugging Face,
cached decoding (prefill), beam search, training and the gin wiring.

Tiny T5 1.1 (vocab 64, d_model 16, 2 + 2 layers). The HF reference gets the
decoder prompt as `decoder_inputs_embeds` (prompt rows in front of the token
embeddings), so it checks masking, relative positions and the dropped prompt
logits independently of our code.
"""
# The cache helpers (_start_cache, _decode_step) are private to decoding.
# pylint: disable=protected-access
import functools
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from references import reference_library
import pytest

import model_fixtures

from prompt_tuning import checkpoints, losses, tree
from prompt_tuning.checkpoints import frozen as frozen_lib
from prompt_tuning.cli import train as train_cli
from prompt_tuning.eval import prompt_eval
from prompt_tuning.models import (Transformer, decoding, encode, get_config, init_cache,
                                  init_params, param_axes)
from prompt_tuning.prompts import export, spec as spec_lib
from prompt_tuning.prompts.spec import DECODER_PROMPT_PATH, PROMPT_PATH
from prompt_tuning.testing import tiny as testing
from prompt_tuning.train import optim, step as step_lib, trainable as trainable_lib
from prompt_tuning.train.state import TrainState

EOS = model_fixtures.EOS
P_DEC = 4
T = 6  # decode length
# [B=3, L=6] inputs of different lengths, padded with 0.
INPUTS = np.array([[5, 6, 7, 8, 1, 0],
                   [10, 11, 1, 0, 0, 0],
                   [20, 21, 22, 23, 24, 1]], np.int32)
TINY = get_config("tiny", dropout_rate=0.0)
MODELS = {
    "decoder": Transformer(TINY, decoder_prompt=spec_lib.decoder_prompt(P_DEC)),
    "both": Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(3),
                        decoder_prompt=spec_lib.decoder_prompt(P_DEC)),
}


@functools.lru_cache(maxsize=None)
def _setup(name: str, seed: int = 0, eos_boost: float = 2.0):
  """(model, params): numpy-drawn weights (kernels N(0, 1/fan_in), embedding
  N(0, 1), relative biases N(0, 0.5), norm scales U[0.5, 1.5], prompts
  U[-0.5, 0.5]) with the EOS logit column scaled by `eos_boost`, so that some
  greedy sequences end early and others run to the length limit."""
  model = MODELS[name]
  return model, model_fixtures.random_params(model, seed, eos_boost)


def _shift_right(ids):
  return np.pad(np.asarray(ids)[:, :-1], ((0, 0), (1, 0)))


def _with_decoder_prompt(params, prompt):
  flat = tree.flatten(params)
  flat[DECODER_PROMPT_PATH] = jnp.asarray(prompt, jnp.float32)
  return tree.unflatten(flat)


greedy, beam = model_fixtures.greedy, model_fixtures.beam
logits_of = jax.jit(lambda model, params, tokens, decoder_inputs: model.apply(
    {"params": params}, tokens, decoder_inputs), static_argnums=0)  # teacher forced


# ----------------------------------------------------------------------------
# (a) The parameter.
# ----------------------------------------------------------------------------

def test_decoder_prompt_param_path_shape_axes_and_init():
  flat = tree.flatten(init_params(MODELS["decoder"], jax.random.PRNGKey(0)))
  prompt = flat[DECODER_PROMPT_PATH]
  assert prompt.shape == (P_DEC, 16) and prompt.dtype == jnp.float32
  assert PROMPT_PATH not in flat  # encoder prompt length 0
  assert -0.5 <= float(prompt.min()) < -0.1 and 0.1 < float(prompt.max()) <= 0.5
  axes = tree.flatten(param_axes(MODELS["decoder"]))
  assert axes[DECODER_PROMPT_PATH] == jax.sharding.PartitionSpec("prompt", "prompt_embed")
  plain = tree.flatten(jax.eval_shape(
      lambda: init_params(get_config("tiny"), jax.random.PRNGKey(0))))
  assert DECODER_PROMPT_PATH not in plain
  # Everything else is the plain model's tree: a pretrained checkpoint still fits.
  assert sorted(set(flat) - {DECODER_PROMPT_PATH}) == sorted(plain)
  checkpoints.validate_params(TINY, tree.unflatten(plain))


# ----------------------------------------------------------------------------
# (b) Teacher forcing against Hugging Face, and cached decoding against both.
# ----------------------------------------------------------------------------

def _hf_logits(model, params, tokens, decoder_inputs):
  """HF T5's [B, T, V] logits with our decoder prompt fed as decoder_inputs_embeds."""
  torch = reference_library("torch")
  transformers = reference_library("transformers")
  with tempfile.TemporaryDirectory() as directory:
    checkpoints.save_hf(model.config, params, directory, drop_prompt=True)
    hf = transformers.T5ForConditionalGeneration.from_pretrained(directory).eval()
  table = np.asarray(params["token_embedder"]["embedding"])
  batch = tokens.shape[0]
  enc = table[tokens]  # [B, L, D]
  enc_mask = (tokens > 0).astype(np.int64)
  if model.encoder_prompt is not None:
    prompt = np.asarray(params["encoder"]["prompt"]["prompt"])
    enc = np.concatenate([np.broadcast_to(prompt, (batch,) + prompt.shape), enc], 1)
    enc_mask = np.concatenate([np.ones((batch, len(prompt)), np.int64), enc_mask], 1)
  dec_prompt = np.asarray(params["decoder"]["prompt"]["prompt"])  # [P, D]
  dec = np.concatenate([np.broadcast_to(dec_prompt, (batch,) + dec_prompt.shape),
                        table[decoder_inputs]], 1)  # [B, P + T, D]
  with torch.no_grad():
    logits = hf(inputs_embeds=torch.tensor(enc), attention_mask=torch.tensor(enc_mask),
                decoder_inputs_embeds=torch.tensor(dec)).logits.numpy()
  return logits[:, len(dec_prompt):]  # the prompt positions have no logits


@pytest.mark.parametrize("name", sorted(MODELS))
def test_teacher_forced_logits_equal_hf_with_the_prompt_as_decoder_embeds(name):
  model, params = _setup(name)
  rng = np.random.default_rng(0)
  decoder_inputs = np.concatenate(
      [np.zeros((3, 1), np.int32), rng.integers(2, 64, (3, T - 1), dtype=np.int32)], 1)
  ours = logits_of(model, params, INPUTS, decoder_inputs)
  assert ours.shape == (3, T, 64)
  np.testing.assert_allclose(ours, _hf_logits(model, params, INPUTS, decoder_inputs),
                             atol=1e-4, rtol=0)
  # Guard: the prompt matters at every position (zeroed or moved, logits move).
  prompt = params["decoder"]["prompt"]["prompt"]
  for other in (np.zeros_like(prompt), np.asarray(prompt) + 0.5):
    moved = logits_of(model, _with_decoder_prompt(params, other), INPUTS, decoder_inputs)
    assert np.abs(np.asarray(moved - ours)).max(axis=(0, 2)).min() > 1e-3


@functools.partial(jax.jit, static_argnums=0)
def _incremental_logits(model, params, tokens, decoder_inputs):
  """[B, T, V] logits from the prefilled cache and T one-token steps."""
  encoded, mask = encode(model, params, tokens)
  length = decoder_inputs.shape[1]
  cache = decoding._start_cache(model, params, encoded, mask, length)

  def step(cache, column):
    logits, cache = decoding._decode_step(model, params, encoded, mask, cache, column,
                                          length)
    return cache, logits

  _, logits = jax.lax.scan(step, cache, decoder_inputs.T)
  return logits.transpose(1, 0, 2)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cached_steps_after_the_prefill_give_the_teacher_forced_logits(name):
  model, params = _setup(name)
  rng = np.random.default_rng(1)
  decoder_inputs = np.concatenate(
      [np.zeros((3, 1), np.int32), rng.integers(2, 64, (3, T - 1), dtype=np.int32)], 1)
  full = logits_of(model, params, INPUTS, decoder_inputs)
  steps = _incremental_logits(model, params, INPUTS, decoder_inputs)
  np.testing.assert_allclose(steps, full, atol=1e-5, rtol=0)


def test_cache_holds_the_prompt_and_the_prefill_fills_it():
  model, params = _setup("decoder")
  cache = init_cache(model, 3, T)
  keys = cache["decoder"]["layers_0"]["self_attention"]["cached_key"]
  assert keys.shape == (3, P_DEC + T, 2, 8)  # [B, P + T_max, N, K]
  start = jax.jit(lambda params, tokens: decoding._start_cache(
      model, params, *encode(model, params, tokens), T))
  filled = start(params, INPUTS)
  layer = filled["decoder"]["layers_1"]["self_attention"]
  assert int(layer["cache_index"]) == P_DEC
  written = np.abs(np.asarray(layer["cached_key"])).sum(axis=(0, 2, 3))
  assert (written[:P_DEC] > 0).all() and (written[P_DEC:] == 0).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_greedy_tokens_are_the_teacher_forced_argmax(name):
  model, params = _setup(name)
  ids = np.asarray(greedy(model, params, INPUTS, T))
  ended = (ids == EOS).any(axis=1)
  assert ended.any() and not ended.all(), f"test premise: want mixed EOS, got {ids}"
  assert len(np.unique(ids[ids > 1])) > 2, f"test premise: want varied tokens, got {ids}"
  logits = logits_of(model, params, INPUTS, _shift_right(ids))
  want = np.asarray(jnp.argmax(logits, axis=-1))
  # Up to and including EOS the tokens are the argmax; after it, 0.
  upto_eos = np.cumsum(np.cumsum(ids == EOS, axis=1), axis=1) <= 1
  np.testing.assert_array_equal(np.where(upto_eos, want, 0), ids)
  # Guard: without the prompt the same frozen weights decode something else.
  plain = {**params, "decoder": {k: v for k, v in params["decoder"].items() if k != "prompt"}}
  other = greedy(model.clone(decoder_prompt=None), plain, INPUTS, T)
  assert not np.array_equal(np.asarray(other), ids)


# ----------------------------------------------------------------------------
# (c) Beam search, sampling and predict with a decoder prompt.
# ----------------------------------------------------------------------------

def test_one_beam_without_length_penalty_is_greedy():
  model, params = _setup("both")
  ids, _ = beam(model, params, INPUTS, T, 1, 0.0)
  np.testing.assert_array_equal(np.asarray(ids)[:, 0],
                                np.asarray(greedy(model, params, INPUTS, T)))


def test_beam_scores_are_teacher_forced_log_probs():
  # Beams reorder the prefilled cache; each score must still be its sequence's
  # teacher-forced log-likelihood (alpha = 0: no length penalty).
  model, params = _setup("both")
  ids, scores = beam(model, params, INPUTS, T, 3, 0.0)
  ids = np.asarray(ids).reshape(9, T)
  targets = np.where(np.cumsum(np.cumsum(ids == EOS, 1), 1) <= 1, ids, 0)
  tokens = np.repeat(INPUTS, 3, axis=0)
  batch = {"encoder_input_tokens": tokens, "decoder_input_tokens": _shift_right(targets),
           "decoder_target_tokens": targets}
  want = model_fixtures.score(model, params, batch)
  np.testing.assert_allclose(np.asarray(scores).reshape(9), want, atol=1e-4)
  for example in ids.reshape(3, 3, T):  # three different beams each, one of them long
    assert len({tuple(r) for r in example}) == 3
  assert (ids > 0).sum(axis=1).max() == T


def test_predict_with_top_k_1_sampling_is_greedy_with_a_decoder_prompt():
  # predict -> sample_decode -> the shared decode loop with the prefilled cache.
  model, params = _setup("decoder")
  predict = jax.jit(functools.partial(decoding.predict, model, temperature=1.0, top_k=1),
                    static_argnums=2)
  np.testing.assert_array_equal(predict(params, INPUTS, T, rng=jax.random.PRNGKey(0)),
                                np.asarray(greedy(model, params, INPUTS, T)))


# ----------------------------------------------------------------------------
# (d) Training: the default regex trains the decoder prompt, and only it.
# ----------------------------------------------------------------------------

def test_default_regex_takes_both_prompts():
  params = jax.eval_shape(lambda: init_params(MODELS["both"], jax.random.PRNGKey(0)))
  assert trainable_lib.trainable_paths(params) == [DECODER_PROMPT_PATH, PROMPT_PATH]


def test_with_only_a_decoder_prompt_only_it_trains():
  model = Transformer(get_config("tiny", dropout_rate=0.1),
                      decoder_prompt=spec_lib.decoder_prompt(P_DEC))
  params = init_params(model, jax.random.PRNGKey(0))
  before = {k: np.array(v) for k, v in tree.flatten(params).items()}
  trainable, frozen = trainable_lib.split(params)
  assert sorted(tree.flatten(trainable)) == [DECODER_PROMPT_PATH]
  tx = optim.paper_adafactor()
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(1))
  train_step = step_lib.jit_train_step(model, tx, losses.LossConfig())
  rng = np.random.RandomState(0)
  for _ in range(3):
    targets = rng.randint(2, 64, (2, 4)).astype(np.int32)
    batch = {"encoder_input_tokens": rng.randint(2, 64, (2, 5)).astype(np.int32),
             "decoder_target_tokens": targets, "decoder_input_tokens": _shift_right(targets),
             "decoder_loss_weights": np.ones((2, 4), np.int32)}
    state, metrics = train_step(state, frozen, batch)
    assert np.isfinite(float(metrics["loss"]))
  after = tree.flatten(tree.merge(state.trainable, frozen))
  changed = sorted(k for k in before if not np.array_equal(before[k], np.asarray(after[k])))
  assert changed == [DECODER_PROMPT_PATH]


def test_gin_run_with_only_a_decoder_prompt_trains_evaluates_and_exports_it(tmp_path):
  # The whole stack: DECODER_PROMPT_LENGTH -> PromptSpec -> loop (greedy eval with the
  # prefill) -> .npy export; PROMPT_LENGTH = 0.
  ckpt = testing.write_tiny_checkpoint(str(tmp_path / "t5"))
  result = train_cli.run_train([
      "--gin_file=models/t5_1_1_tiny_prompt.gin", "--gin_file=prompts/random_uniform.gin",
      "--gin_file=runs/prompt_tune.gin", "--gin_file=runs/tiny_test.gin",
      f"--gin.MODEL_DIR='{tmp_path / 'run'}'", f"--gin.INITIAL_CHECKPOINT_PATH='{ckpt}'",
      "--gin.PROMPT_LENGTH=0", f"--gin.DECODER_PROMPT_LENGTH={P_DEC}",
      "--gin.TRAIN_STEPS=4", "--gin.EVAL_PERIOD=4", "--gin.loop.train.eval_at_start=False",
      "--gin.loop.train.checkpoint_period=2", "--gin.loop.train.eval_num_examples=8"],
      progress=False)
  name = export.npy_name(DECODER_PROMPT_PATH)
  assert result.prompt_path == result.decoder_prompt_path
  assert result.prompt_path == os.path.join(result.model_dir, "best", name)
  assert np.load(result.prompt_path).shape == (P_DEC, 16)
  numpy_dir = tmp_path / "run" / "numpy_checkpoints"
  assert sorted(os.listdir(numpy_dir / "checkpoint_4")) == [name]
  evals = [r for r in result.history if r["kind"] == "eval"]
  assert [r["step"] for r in evals] == [4]
  assert 0 <= evals[0]["tiny_majority_v1/accuracy"] <= 100
  assert not np.array_equal(np.load(numpy_dir / "checkpoint_2" / name),
                            np.load(numpy_dir / "checkpoint_4" / name))
  # `prompt-tuning eval` reads P_dec off the saved prompt and scores what the run did.
  again = prompt_eval.evaluate_prompt(
      mixture_or_task_name=testing.TINY_TASK, task_feature_lengths={"inputs": 8, "targets": 2},
      initial_checkpoint_path=ckpt, model_dir=result.model_dir, batch_size=8,
      num_examples=8, register_tasks=testing.register_tiny_task)
  for key in ("tiny_majority_v1/accuracy", "tiny_majority_v1/loss_per_token"):
    assert again[key] == pytest.approx(evals[0][key], rel=1e-5), key


# ----------------------------------------------------------------------------
# (e) Bad input.
# ----------------------------------------------------------------------------

def test_bad_decoder_prompt_settings_name_the_field():
  with pytest.raises(ValueError, match=r"DECODER_PROMPT_LENGTH=-1; expected an int >= 1"):
    spec_lib.decoder_prompt(-1)
  with pytest.raises(ValueError, match=r"combination 'suffix'; expected one of \['prefix'\]"):
    spec_lib.PromptSpec("decoder", 3, combine="suffix")
  with pytest.raises(ValueError, match=r"DECODER_PROMPT_LENGTH=-2; expected an int >= 0"):
    frozen_lib.prompt_specs(3, -2)
  with pytest.raises(ValueError, match=r"PROMPT_LENGTH=0 and DECODER_PROMPT_LENGTH=0; "
                                       r"expected at least one > 0"):
    frozen_lib.prompt_specs(0, 0)
  with pytest.raises(ValueError, match=r"decoder_prompt=.*expected a PromptSpec with "
                                       r"stack='decoder'"):
    Transformer(TINY, decoder_prompt=spec_lib.encoder_prompt(3))
  model, params = _setup("decoder")
  encoded, mask = encode(model, params, INPUTS)
  with pytest.raises(ValueError, match=r"prefill needs .* max_decode_length=0"):
    model.apply({"params": params}, encoded, mask, 0, method="prefill_decoder_prompt")
