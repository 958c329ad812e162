"""A prompt bank: one frozen model, K prompts, each example picking its own.

Every path that runs the model is checked row by row against K separate
single-prompt models (the bank's rows copied into plain [P, D] prompts):
teacher-forced logits, `score`, rank classification, greedy and beam search,
with an encoder prompt, a decoder prompt (its cache prefill included) and both.
Then training (each prompt learns only from its own examples) and bad input.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import model_fixtures
from prompt_tuning import losses, tree
from prompt_tuning.models import Transformer, decoding, get_config, init_params
from prompt_tuning.prompts import initializers, prompt as prompt_lib
from prompt_tuning.prompts import spec as spec_lib
from prompt_tuning.prompts.spec import DECODER_PROMPT_PATH, PROMPT_PATH
from prompt_tuning.train import optim, step as step_lib, trainable as trainable_lib
from prompt_tuning.train.state import TrainState

K = 3
T = 5
TINY = get_config("tiny", dropout_rate=0.0)
# [B=5, L=6]: padded inputs; example b uses prompt IDS[b] (every prompt used, one twice).
INPUTS = np.array([[5, 6, 7, 8, 1, 0],
                   [10, 11, 1, 0, 0, 0],
                   [20, 21, 22, 23, 24, 1],
                   [30, 31, 32, 1, 0, 0],
                   [40, 41, 1, 0, 0, 0]], np.int32)
IDS = np.array([2, 0, 1, 2, 0], np.int32)
LAYOUTS = {
    "encoder": (3, 0),
    "decoder": (0, 2),
    "both": (3, 2),
}


def _specs(layout, num_prompts, combine="prefix"):
  enc, dec = LAYOUTS[layout]
  return dict(encoder_prompt=spec_lib.encoder_prompt(enc, num_prompts, combine) if enc else None,
              decoder_prompt=spec_lib.decoder_prompt(dec, num_prompts) if dec else None)


@functools.lru_cache(maxsize=None)
def _setup(layout, combine="prefix"):
  """(bank model, bank params, [single-prompt model], [params of prompt k])."""
  bank_model = Transformer(TINY, **_specs(layout, K, combine))
  params = model_fixtures.random_params(bank_model, seed=1)
  single_model = Transformer(TINY, **_specs(layout, 1, combine))
  flat = tree.flatten(params)
  singles = []
  for k in range(K):
    one = dict(flat)
    for path in (PROMPT_PATH, DECODER_PROMPT_PATH):
      if path in one:
        one[path] = flat[path][k]  # [K, P, D] -> row k, a plain [P, D] prompt
    singles.append(tree.unflatten(one))
  for path in (PROMPT_PATH, DECODER_PROMPT_PATH):  # the rows differ, so a mix-up shows
    if path in flat:
      assert min(np.abs(flat[path][i] - flat[path][j]).max()
                 for i in range(K) for j in range(K) if i != j) > 0.05
  return bank_model, params, single_model, singles


def _shift_right(ids):
  return np.pad(np.asarray(ids)[:, :-1], ((0, 0), (1, 0)))


def _targets():
  rng = np.random.default_rng(0)
  targets = rng.integers(2, 64, (len(INPUTS), 4)).astype(np.int32)
  targets[:, -1] = 1
  targets[1, 2:] = 0  # a short target
  return targets


def _per_row(fn_single, singles):
  """Row b of the single-prompt result for prompt IDS[b]."""
  outs = [np.asarray(fn_single(p)) for p in singles]
  return np.stack([outs[k][b] for b, k in enumerate(IDS)])


apply = jax.jit(lambda model, params, *a, **kw: model.apply({"params": params}, *a, **kw),
                static_argnums=0)
greedy, beam = model_fixtures.greedy, model_fixtures.beam
score, rank = model_fixtures.score, model_fixtures.rank_classify


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_logits_row_by_row_equal_k_single_prompt_models(layout):
  bank_model, params, single, singles = _setup(layout)
  targets = _targets()
  got = apply(bank_model, params, INPUTS, _shift_right(targets), targets, prompt_ids=IDS)
  want = _per_row(lambda p: apply(single, p, INPUTS, _shift_right(targets), targets), singles)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  # The ids matter: another assignment gives other logits.
  other = apply(bank_model, params, INPUTS, _shift_right(targets), targets,
                prompt_ids=(IDS + 1) % K)
  assert np.abs(np.asarray(other - got)).max() > 1e-3


@pytest.mark.parametrize("combine", ["after_bos", "suffix"])
def test_every_encoder_layout_takes_per_example_prompts(combine):
  bank_model, params, single, singles = _setup("encoder", combine)
  targets = _targets()
  got = apply(bank_model, params, INPUTS, _shift_right(targets), targets, prompt_ids=IDS)
  want = _per_row(lambda p: apply(single, p, INPUTS, _shift_right(targets), targets), singles)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_score_and_rank_classification_row_by_row(layout):
  bank_model, params, single, singles = _setup(layout)
  targets = _targets()
  batch = {"encoder_input_tokens": INPUTS, "decoder_input_tokens": _shift_right(targets),
           "decoder_target_tokens": targets}
  got = score(bank_model, params, {**batch, "prompt_ids": IDS})
  np.testing.assert_allclose(got, _per_row(lambda p: score(single, p, batch), singles),
                             atol=1e-5, rtol=0)
  options = np.array([[3, 1, 0], [4, 5, 1], [6, 1, 0]], np.int32)  # C = 3 shared options
  best, scores = rank(bank_model, params, INPUTS, options, IDS)
  want = _per_row(lambda p: rank(single, p, INPUTS, options)[1], singles)
  np.testing.assert_allclose(scores, want, atol=1e-5, rtol=0)
  np.testing.assert_array_equal(best, want.argmax(-1))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_score_options_equal_score_on_the_expanded_batch_with_each_rows_id(layout):
  # The decoder prompt of option row b * C + c is example b's; the encodings are shared.
  bank_model, params, _, _ = _setup(layout)
  options = np.stack([np.roll(_targets(), shift, axis=0) for shift in range(3)], axis=1)
  got = np.asarray(model_fixtures.score_options(
      bank_model, params, INPUTS, options, IDS))  # [B=5, C=3]
  flat = options.reshape(-1, options.shape[-1])
  want = score(bank_model, params, {
      "encoder_input_tokens": np.repeat(INPUTS, 3, 0), "decoder_input_tokens":
      _shift_right(flat), "decoder_target_tokens": flat, "prompt_ids": np.repeat(IDS, 3)})
  np.testing.assert_allclose(got, np.asarray(want).reshape(5, 3), rtol=1e-6, atol=0)
  assert np.ptp(got, axis=1).min() > 0.1  # the options differ within every example


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_greedy_and_beam_search_row_by_row(layout):
  bank_model, params, single, singles = _setup(layout)
  got = np.asarray(greedy(bank_model, params, INPUTS, T, 1, IDS))
  np.testing.assert_array_equal(got, _per_row(lambda p: greedy(single, p, INPUTS, T), singles))
  ids, scores = beam(bank_model, params, INPUTS, T, 2, 0.6, 1, IDS)
  want_ids = _per_row(lambda p: beam(single, p, INPUTS, T, 2)[0], singles)
  want_scores = _per_row(lambda p: beam(single, p, INPUTS, T, 2)[1], singles)
  np.testing.assert_array_equal(np.asarray(ids), want_ids)
  np.testing.assert_allclose(scores, want_scores, atol=1e-5, rtol=0)


def test_sampling_and_predict_take_the_ids_too():
  bank_model, params, single, singles = _setup("both")
  rng = jax.random.PRNGKey(3)
  sample = jax.jit(decoding.sample_decode, static_argnums=(0, 3),
                   static_argnames=("temperature", "top_k"))
  got = sample(bank_model, params, INPUTS, T, rng, temperature=1.0, top_k=1, prompt_ids=IDS)
  np.testing.assert_array_equal(got, _per_row(lambda p: greedy(single, p, INPUTS, T), singles))
  np.testing.assert_array_equal(
      jax.jit(decoding.predict, static_argnums=(0, 3))(bank_model, params, INPUTS, T,
                                                        prompt_ids=IDS),
      _per_row(lambda p: greedy(single, p, INPUTS, T), singles))


def test_a_bank_stores_one_array_at_the_prompt_path():
  model = Transformer(TINY, **_specs("both", K))
  flat = tree.flatten(init_params(model, jax.random.PRNGKey(0)))
  assert flat[PROMPT_PATH].shape == (K, 3, 16) and flat[DECODER_PROMPT_PATH].shape == (K, 2, 16)
  single = tree.flatten(init_params(Transformer(TINY, **_specs("both", 1)), jax.random.PRNGKey(0)))
  assert single[PROMPT_PATH].shape == (3, 16)  # K = 1 stays today's [P, D]
  assert sorted(flat) == sorted(single)


def test_make_prompt_fills_a_bank_member_by_member():
  table = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
  spec = spec_lib.encoder_prompt(4, K, init=initializers.sampled_vocab(64))
  bank = initializers.make_prompt(spec, table, jax.random.PRNGKey(0))
  assert bank.shape == (K, 4, 16)
  for k in range(K):  # member k is the initializer's output for fold_in(rng, k)
    want = initializers.sampled_vocab(64)(jax.random.fold_in(jax.random.PRNGKey(0), k),
                                          (4, 16), table)
    np.testing.assert_array_equal(bank[k], want)
  assert not np.array_equal(bank[0], bank[1])
  one = initializers.make_prompt(spec.replace(num_prompts=1), table, jax.random.PRNGKey(0))
  assert one.shape == (4, 16)


# ----------------------------------------------------------------------------
# Training with a bank.
# ----------------------------------------------------------------------------

def _batch(ids):
  targets = _targets()
  return {"encoder_input_tokens": INPUTS, "decoder_input_tokens": _shift_right(targets),
          "decoder_target_tokens": targets,
          "decoder_loss_weights": (targets > 0).astype(np.int32), "prompt_ids": ids}


def _grads(model, params, batch):
  trainable, frozen = trainable_lib.split(params)
  grad = jax.jit(jax.grad(lambda t, b: losses.loss_fn(t, frozen, b, None, model=model,
                                                     loss_cfg=losses.LossConfig())[0]))
  return tree.flatten(grad(trainable, batch))


@pytest.mark.parametrize("layout", ["encoder", "both"])
def test_each_prompt_learns_only_from_its_own_examples(layout):
  bank_model, params, single, singles = _setup(layout)
  ids = np.array([2, 0, 2, 2, 0], np.int32)  # prompt 1 is used by no example
  grads = _grads(bank_model, params, _batch(ids))
  for path, grad in grads.items():
    assert grad.shape[0] == K
    np.testing.assert_array_equal(grad[1], 0.0)  # absent from the batch: exactly zero
    assert np.abs(grad[0]).max() > 0 and np.abs(grad[2]).max() > 0
  # With T5X's summed loss, prompt k's gradient is the single-prompt gradient on
  # its own examples alone.
  for k in (0, 2):
    rows = ids == k
    sub = {key: v[rows] for key, v in _batch(ids).items() if key != "prompt_ids"}
    want = _grads(single, singles[k], sub)
    for path in grads:
      np.testing.assert_allclose(grads[path][k], want[path], atol=1e-5, rtol=1e-4)


def test_a_train_step_on_a_mixed_batch_leaves_an_unused_prompt_alone():
  bank_model, params, _, _ = _setup("both")
  trainable, frozen = trainable_lib.split(params)
  tx = optax.sgd(0.1)  # no weight decay, no state: only the gradient moves a prompt
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(0))
  step = step_lib.jit_train_step(bank_model, tx, losses.LossConfig())
  new, metrics = step(state, frozen, _batch(np.array([2, 0, 2, 2, 0], np.int32)))
  assert np.isfinite(float(metrics["loss"]))
  before, after = tree.flatten(trainable), tree.flatten(new.trainable)
  for path in before:
    np.testing.assert_array_equal(after[path][1], before[path][1])
    assert not np.array_equal(after[path][0], before[path][0])
    assert not np.array_equal(after[path][2], before[path][2])
  # The paper's Adafactor trains a bank too (its prompt slots are never factored).
  adafactor = optim.paper_adafactor()
  state = TrainState.create(trainable, adafactor, jax.random.PRNGKey(0))
  new, _ = step_lib.jit_train_step(bank_model, adafactor, losses.LossConfig())(
      state, frozen, _batch(IDS))
  assert all(np.isfinite(v).all() for v in tree.flatten(new.trainable).values())


# ----------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------

def test_ids_outside_the_bank_are_refused_or_poison_the_output():
  bank_model, params, _, _ = _setup("encoder")
  targets = _targets()
  with pytest.raises(ValueError, match=r"prompt_ids \[3\] are outside \[0, 3\): the prompt "
                                       r"bank holds 3 prompts"):
    bank_model.apply({"params": params}, INPUTS, _shift_right(targets), targets,
                     prompt_ids=np.array([0, 1, 2, 3, 0], np.int32))
  with pytest.raises(ValueError, match=r"prompt_ids \[-1\] are outside"):
    decoding.greedy_decode(bank_model, params, INPUTS, T, prompt_ids=np.array(
        [0, -1, 0, 0, 0], np.int32))
  # Under jit the values cannot be checked: a bad row's prompt is NaN (-1 too: jnp.take
  # alone would wrap it to the last prompt), so its logits are NaN (and a loss on it is not finite), the good rows are unaffected.
  got = np.asarray(apply(bank_model, params, INPUTS, _shift_right(targets), targets,
                         prompt_ids=np.array([0, 1, -1, 7, 0], np.int32)))
  assert np.isnan(got[[2, 3]]).all() and np.isfinite(got[[0, 1, 4]]).all()


def test_ids_of_the_wrong_shape_or_type_or_missing_are_refused():
  bank_model, params, _, _ = _setup("both")
  targets = _targets()
  call = functools.partial(bank_model.apply, {"params": params}, INPUTS, _shift_right(targets),
                           targets)
  with pytest.raises(ValueError, match=r"prompt_ids has shape \(4,\); expected \[batch\] = "
                                       r"\(5,\), one id per example"):
    call(prompt_ids=np.zeros(4, np.int32))
  with pytest.raises(ValueError, match=r"prompt_ids has shape \(5, 1\)"):
    call(prompt_ids=np.zeros((5, 1), np.int32))
  with pytest.raises(ValueError, match="prompt_ids has dtype float32; expected integers"):
    call(prompt_ids=np.zeros(5, np.float32))
  with pytest.raises(ValueError, match=r"the prompt bank holds 3 prompts of shape \(3, 16\); "
                                       r"expected prompt_ids \[batch\]"):
    call()
  with pytest.raises(ValueError, match="prompt bank holds 3 prompts; expected the prompt_id"):
    from prompt_tuning.eval.evaluator import Evaluator  # pylint: disable=import-outside-toplevel
    Evaluator.evaluate(type("E", (), {"model": bank_model, "task_prompt_ids": None})(), {}, {}, 0)


def test_a_bank_whose_width_is_not_d_model_is_refused():
  bank_model, params, _, _ = _setup("encoder")
  flat = tree.flatten(params)
  flat[PROMPT_PATH] = np.zeros((K, 3, 8), np.float32)
  with pytest.raises(ValueError, match=r"encoder/prompt/prompt: prompt has shape \(3, 3, 8\); "
                                       r"expected \(K, P, d_model\) = \(3, 3, 16\)"):
    bank_model.apply({"params": tree.unflatten(flat)}, INPUTS, INPUTS[:, :3])
  with pytest.raises(ValueError, match=r"prompt 1: prompt has shape \(3, 8\); expected "
                                       r"width d_model=16"):
    spec_lib.stack_bank([np.zeros((3, 16)), np.zeros((3, 8))], d_model=16)


def test_prompts_of_different_lengths_cannot_share_a_bank():
  with pytest.raises(ValueError, match=r"prompts of different shapes cannot share a bank "
                                       r"\(a.npy: \(3, 16\), b.npy: \(5, 16\)\); expected one "
                                       r"length P"):
    spec_lib.stack_bank([np.zeros((3, 16)), np.zeros((5, 16))], ["a.npy", "b.npy"])
  bank = spec_lib.stack_bank([np.ones((3, 16)), np.zeros((3, 16))])
  assert bank.shape == (2, 3, 16) and bank.dtype == np.float32
  with pytest.raises(ValueError, match="needs at least one prompt"):
    spec_lib.stack_bank([])


def test_bad_specs_and_mismatched_banks_are_refused():
  with pytest.raises(ValueError, match=r"encoder/prompt/prompt: num_prompts=0; expected an "
                                       r"int >= 1"):
    spec_lib.encoder_prompt(3, 0)
  with pytest.raises(ValueError, match=r"banks hold \[2, 3\] prompts; expected the same K"):
    Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(3, 2),
                decoder_prompt=spec_lib.decoder_prompt(2, 3))
  with pytest.raises(ValueError, match=r"prompt has shape \(3,\); expected \[P, d_model\] "
                                       r"\(one prompt\) or \[K, P, d_model\] \(a bank\)"):
    spec_lib.PromptSpec.from_array("encoder", np.zeros(3))
  assert spec_lib.PromptSpec.from_array("decoder", np.zeros((4, 2, 16))) == \
      spec_lib.decoder_prompt(2, 4)
  with pytest.raises(ValueError, match="expected prompt_ids"):
    prompt_lib.select(jnp.zeros((2, 3, 4)), None, 5)


def test_a_spec_read_off_a_stored_array():
  from_array = spec_lib.PromptSpec.from_array
  assert from_array("encoder", np.zeros((3, 16))) == spec_lib.encoder_prompt(3)
  assert from_array("encoder", np.zeros((1, 16))) == spec_lib.encoder_prompt(1)  # P = 1
  assert from_array("encoder", np.zeros((1, 1, 16))) == spec_lib.encoder_prompt(1)  # K = 1
  assert from_array("encoder", np.zeros((2, 3, 16)), combine="suffix") == \
      spec_lib.encoder_prompt(3, 2, combine="suffix")
  # A decoder prompt is always a prefix, whatever the encoder's combination.
  assert from_array("decoder", np.zeros((3, 16)), combine="suffix") == \
      spec_lib.decoder_prompt(3)
  with pytest.raises(ValueError, match=r"^encoder/prompt/prompt: prompt has shape \(0, 16\)"):
    from_array("encoder", np.zeros((0, 16)))
  with pytest.raises(ValueError, match=r"^a\.npy: prompt has shape \(3,\)"):
    from_array("encoder", np.zeros(3), where="a.npy")


def test_decoder_prompt_is_one_prefix_made_by_its_init():
  spec = spec_lib.decoder_prompt(2)
  assert (spec.stack, spec.length, spec.num_prompts, spec.combine) == ("decoder", 2, 1, "prefix")
  ones = lambda rng, shape, embedding: np.ones(shape, np.float32)
  made = initializers.make_prompt(spec_lib.decoder_prompt(2, init=ones),
                                  np.zeros((8, 4), np.float32), jax.random.PRNGKey(0))
  np.testing.assert_array_equal(made, np.ones((2, 4), np.float32))


def test_select_treats_a_single_prompt_given_ids_as_a_bank_of_one():
  """A [P, D] prompt with prompt_ids is a bank of K = 1: id 0 only, rows [B, P, D]."""
  prompt = jnp.arange(12.0).reshape(3, 4)  # [P=3, D=4]
  got = np.asarray(prompt_lib.select(prompt, np.array([0, 0], np.int32), 2))
  np.testing.assert_array_equal(got, np.stack([np.arange(12.0).reshape(3, 4)] * 2))
  # id 1 < P = 3 and < 2, but outside the one prompt there is.
  with pytest.raises(ValueError, match=r"^prompt_ids \[1\] are outside \[0, 1\): the prompt "
                                       r"bank holds 1 prompt\.$"):
    prompt_lib.select(prompt, np.array([0, 1], np.int32), 2)
  # Under jit the ids cannot be checked: negative and too-large ones gather NaN alike.
  got = jax.jit(lambda i: prompt_lib.select(jnp.ones((3, 2, 4)), i, 3))(
      jnp.array([-1, 0, 3], jnp.int32))
  got = np.asarray(got)
  assert np.isnan(got[[0, 2]]).all() and np.isfinite(got[1]).all()


def test_an_encoder_prompt_of_length_zero_names_prompt_length():
  """The encoder prompt's length error names the gin macro PROMPT_LENGTH."""
  with pytest.raises(ValueError, match=r"^encoder/prompt/prompt: PROMPT_LENGTH=0; expected an "
                                       r"int >= 1\.$"):
    spec_lib.encoder_prompt(0)


def test_prompt_lengths_and_bank_sizes_must_be_ints_not_bools_or_floats():
  """True and 2.0 are refused though they compare like 1 and 2."""
  with pytest.raises(ValueError, match=r"^encoder/prompt/prompt: PROMPT_LENGTH=True; expected "
                                       r"an int >= 1\.$"):
    spec_lib.encoder_prompt(True)
  with pytest.raises(ValueError, match=r"^encoder/prompt/prompt: num_prompts=2\.0; expected "
                                       r"an int >= 1\.$"):
    spec_lib.encoder_prompt(3, 2.0)
  with pytest.raises(ValueError, match=r"^decoder/prompt/prompt: DECODER_PROMPT_LENGTH=3\.0;"):
    spec_lib.decoder_prompt(3.0)
  assert spec_lib.encoder_prompt(np.int64(3)).length == 3  # numpy ints are ints


def test_a_single_prompt_of_the_wrong_width_is_refused_as_p_by_d_model():
  """A [P, D] spec's message spells the single-prompt layout; a fitting value passes."""
  spec = spec_lib.encoder_prompt(3)
  assert spec.check(np.zeros((3, 16), np.float32), 16) is None
  with pytest.raises(ValueError, match=r"^encoder/prompt/prompt: prompt has shape \(3, 8\); "
                                       r"expected \(P, d_model\) = \(3, 16\)\.$"):
    spec.check(np.zeros((3, 8), np.float32), 16)
  with pytest.raises(ValueError, match=r"^a\.npy: prompt has shape \(2, 3, 16\); expected "
                                       r"\(P, d_model\) = \(3, 16\)\.$"):
    spec.check(np.zeros((2, 3, 16), np.float32), 16, where="a.npy")
