"""Decoding and scoring, checked against Hugging Face T5 and plain references.

One tiny T5 1.1 (vocab 64, d_model 16, 2 + 2 layers) with numpy-drawn random
weights, with and without a 3-token soft prompt. The frozen weights are copied
into `transformers.T5ForConditionalGeneration` with `checkpoints.save_hf`; the
prompt reaches HF as `inputs_embeds` (prompt rows in front of the token
embeddings), so HF is an independent reference for prompt-tuned decoding too.
The EOS column of the output layer is scaled up so that some sequences end
early and others run to the length limit; tests assert that premise.
"""
import functools
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from references import reference_library
import pytest

import model_fixtures  # pylint: disable=wrong-import-position

torch = reference_library("torch")
transformers = reference_library("transformers")

from prompt_tuning import checkpoints  # pylint: disable=wrong-import-position
from prompt_tuning.models import (Transformer, decoding, encode, get_config,  # pylint: disable=wrong-import-position
                                   init_cache)
from prompt_tuning.prompts import spec as spec_lib  # pylint: disable=wrong-import-position
from prompt_tuning.testing.naive import repeated_encodings_scores  # pylint: disable=wrong-import-position

EOS = model_fixtures.EOS
T = 8  # decode length
TINY = get_config("tiny", dropout_rate=0.0)
MODELS = {
    "plain": Transformer(TINY),
    "prompt": Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(3)),
}
# [B=4, L=7] inputs of different lengths, padded with 0.
INPUTS = np.array([[5, 6, 7, 8, 9, 1, 0],
                   [10, 11, 1, 0, 0, 0, 0],
                   [3, 4, 2, 1, 0, 0, 0],
                   [20, 21, 22, 23, 24, 25, 1]], np.int32)


# ----------------------------------------------------------------------------
# Weights, the HF twin, and jitted functions (compiled once per static setting).
# ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _setup(name: str, seed: int = 0, logits_scale: float = 1.0):
  """(model, params, HF model) for MODELS[name]; the frozen weights are shared."""
  model = MODELS[name]
  params = model_fixtures.random_params(MODELS["prompt"], seed,
                                        logits_scale=logits_scale)
  if model.encoder_prompt is None:
    params = dict(params, encoder={k: v for k, v in params["encoder"].items()
                                   if k != "prompt"})
  return model, params, _hf_model(TINY, params)


def _hf_model(config, params):
  with tempfile.TemporaryDirectory() as directory:
    checkpoints.save_hf(config, params, directory, drop_prompt=True)
    model = transformers.T5ForConditionalGeneration.from_pretrained(directory)
  return model.eval()


def _hf_encoder_kwargs(model, params, tokens) -> dict:
  """HF encoder inputs: ids, or with a prompt the [B, P + L, D] embeddings + mask."""
  tokens = np.asarray(tokens)
  mask = (tokens > 0).astype(np.int64)
  if model.encoder_prompt is None:
    return {"input_ids": torch.tensor(tokens, dtype=torch.long),
            "attention_mask": torch.tensor(mask)}
  prompt = np.asarray(params["encoder"]["prompt"]["prompt"])  # [P, D]
  embedded = np.asarray(params["token_embedder"]["embedding"])[tokens]  # [B, L, D]
  batch = tokens.shape[0]
  embedded = np.concatenate([np.broadcast_to(prompt, (batch,) + prompt.shape), embedded], 1)
  mask = np.concatenate([np.ones((batch, prompt.shape[0]), np.int64), mask], 1)
  return {"inputs_embeds": torch.tensor(embedded), "attention_mask": torch.tensor(mask)}


def _hf_log_probs(setup, tokens, decoder_inputs) -> np.ndarray:
  """[B, T, V] float64 log-softmax of HF's teacher-forced logits."""
  model, params, hf = setup
  with torch.no_grad():
    logits = hf(**_hf_encoder_kwargs(model, params, tokens),
                decoder_input_ids=torch.tensor(np.asarray(decoder_inputs), dtype=torch.long)
                ).logits
  return torch.log_softmax(logits.double(), dim=-1).numpy()


def _hf_greedy(setup, tokens, length: int) -> np.ndarray:
  """HF greedy `generate`, start token dropped, padded with 0 to `length`."""
  model, params, hf = setup
  with torch.no_grad():
    out = hf.generate(**_hf_encoder_kwargs(model, params, tokens), max_new_tokens=length,
                      do_sample=False, num_beams=1).numpy()
  assert (out[:, 0] == 0).all()  # the decoder start token
  out = out[:, 1:]
  return np.pad(out, ((0, 0), (0, length - out.shape[1])))


greedy, beam = model_fixtures.greedy, model_fixtures.beam
score, score_options = model_fixtures.score, model_fixtures.score_options
sample = jax.jit(decoding.sample_decode, static_argnums=(0, 3),
                 static_argnames=("temperature", "top_k", "top_p"))


def _premise_some_end_early_some_not(ids):
  ids = np.asarray(ids)
  ended = (ids == EOS).any(axis=-1)
  assert ended.any() and not ended.all(), f"test premise: want mixed EOS, got {ids}"


# ----------------------------------------------------------------------------
# Cached decoding and greedy vs Hugging Face.
# ----------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnums=0)
def _incremental_logits(model, params, tokens, decoder_inputs):
  """[B, T, V] logits from T cached one-token decoder steps (decoding's own path)."""
  encoded, mask = encode(model, params, tokens)
  batch, length = decoder_inputs.shape

  def step(cache, column):
    logits, cache = decoding._decode_step(  # pylint: disable=protected-access
        model, params, encoded, mask, cache, column, length)
    return cache, logits

  _, logits = jax.lax.scan(step, init_cache(model, batch, length), decoder_inputs.T)
  return logits.transpose(1, 0, 2)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cached_steps_give_the_teacher_forced_logits(name):
  model, params, _ = _setup(name)
  rng = np.random.default_rng(1)
  decoder_inputs = np.concatenate(
      [np.zeros((4, 1), np.int32), rng.integers(2, 64, (4, T - 1), dtype=np.int32)], 1)
  full = jax.jit(model.apply)({"params": params}, INPUTS, decoder_inputs)
  steps = _incremental_logits(model, params, INPUTS, decoder_inputs)
  assert steps.shape == full.shape == (4, T, 64)
  np.testing.assert_allclose(steps, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_greedy_equals_hf_generate(name):
  model, params, _ = _setup(name)
  ours = np.asarray(greedy(model, params, INPUTS, T))
  _premise_some_end_early_some_not(ours)
  np.testing.assert_array_equal(ours, _hf_greedy(_setup(name), INPUTS, T))
  assert ours.dtype == np.int32


def test_the_prompt_changes_what_is_decoded():
  # Guards the prompt test above: HF only matches if the prompt is used.
  assert not np.array_equal(_hf_greedy(_setup("plain"), INPUTS, T),
                            _hf_greedy(_setup("prompt"), INPUTS, T))


# ----------------------------------------------------------------------------
# Sampling.
# ----------------------------------------------------------------------------

def test_top_k_1_temperature_0_and_tiny_top_p_equal_greedy():
  model, params, _ = _setup("prompt")
  want = np.asarray(greedy(model, params, INPUTS, T))
  rng = jax.random.PRNGKey(0)
  for settings in (dict(top_k=1), dict(temperature=0.0), dict(top_p=1e-6)):
    np.testing.assert_array_equal(sample(model, params, INPUTS, T, rng, **settings), want,
                                  err_msg=str(settings))


def test_sampling_is_reproducible_for_a_seed():
  model, params, _ = _setup("plain")
  first = np.asarray(sample(model, params, INPUTS, T, jax.random.PRNGKey(3), temperature=1.5))
  again = np.asarray(sample(model, params, INPUTS, T, jax.random.PRNGKey(3), temperature=1.5))
  other = np.asarray(sample(model, params, INPUTS, T, jax.random.PRNGKey(4), temperature=1.5))
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  assert not np.array_equal(first, np.asarray(greedy(model, params, INPUTS, T)))
  # After EOS only padding.
  for row in first:
    ends = np.flatnonzero(row == EOS)
    if ends.size:
      assert (row[ends[0] + 1:] == 0).all(), row


def test_mask_top_k_and_top_p_by_hand():
  neg = decoding.NEG_INF
  logits = jnp.log(jnp.array([[0.1, 0.4, 0.2, 0.3]]))
  np.testing.assert_allclose(decoding.mask_top_k(logits, 2),
                             [[neg, np.log(0.4), neg, np.log(0.3)]], rtol=1e-6)
  # Mass above each token in rank order 0.4, 0.3, 0.2, 0.1: 0, 0.4, 0.7, 0.9.
  np.testing.assert_allclose(decoding.mask_top_p(logits, 0.6),
                             [[neg, np.log(0.4), neg, np.log(0.3)]], rtol=1e-6)
  np.testing.assert_allclose(decoding.mask_top_p(logits, 0.75),
                             [[neg, np.log(0.4), np.log(0.2), np.log(0.3)]], rtol=1e-6)
  np.testing.assert_allclose(decoding.mask_top_p(logits, 0.01),
                             [[neg, np.log(0.4), neg, neg]], rtol=1e-6)
  np.testing.assert_array_equal(decoding.mask_top_p(logits, 1.0), logits)


@pytest.mark.parametrize("settings,probs", [
    (dict(temperature=2.0), np.sqrt([0.1, 0.4, 0.2, 0.3])),  # p ** (1 / 2)
    (dict(top_k=2), [0.0, 0.4, 0.0, 0.3]),
    (dict(top_p=0.75), [0.0, 0.4, 0.2, 0.3]),
])
def test_sample_logits_draws_from_the_filtered_distribution(settings, probs):
  probs = np.asarray(probs) / np.sum(probs)
  logits = jnp.log(jnp.array([[0.1, 0.4, 0.2, 0.3]]))
  keys = jax.random.split(jax.random.PRNGKey(0), 20000)
  draws = jax.jit(jax.vmap(lambda k: decoding.sample_logits(k, logits, **settings)[0]))(keys)
  freq = np.bincount(np.asarray(draws), minlength=4) / len(keys)
  # Binomial std <= 0.0036 at n = 20000; 0.015 is about 4 std.
  np.testing.assert_allclose(freq, probs, atol=0.015)


# ----------------------------------------------------------------------------
# Beam search.
# ----------------------------------------------------------------------------

def test_length_penalty_is_t5x():
  np.testing.assert_allclose(decoding.length_penalty(1, 0.6), 1.0)
  np.testing.assert_allclose(decoding.length_penalty(7, 1.0), 2.0)
  np.testing.assert_allclose(decoding.length_penalty(13, 0.5), np.sqrt(3.0), rtol=1e-6)
  np.testing.assert_allclose(decoding.length_penalty(40, 0.0), 1.0)


def test_early_stop_bound_by_hand():
  """Live log-prob -1 after 1 token, T = 10, alpha = 1: the penalty can still
  grow to (5 + 10) / 6 = 2.5, so the live beam may reach -1 / 2.5 = -0.4."""
  cannot_improve = functools.partial(decoding._cannot_improve,  # pylint: disable=protected-access
                                     step=1, max_decode_length=10, alpha=1.0)
  live = jnp.array([[-1.0, -2.0], [-1.0, -2.0], [-1.0, -2.0]])
  finished = jnp.array([[-0.3, -0.39], [-0.3, -0.41], [-0.3, decoding.NEG_INF]])
  np.testing.assert_array_equal(cannot_improve(live, finished), [True, False, False])
  # alpha = -1: the penalty 6 / (5 + n) is largest at the nearest length n = 2,
  # 6 / 7, so the live beam may still reach -7 / 6 (not -15 / 6 at n = 10).
  negative = functools.partial(decoding._cannot_improve,  # pylint: disable=protected-access
                               step=1, max_decode_length=10, alpha=-1.0)
  finished = jnp.array([[-0.5, -1.1], [-0.5, -2.0]])
  np.testing.assert_array_equal(negative(live[:2], finished), [True, False])


def _length(ids: np.ndarray) -> int:
  """Generated tokens, the EOS included."""
  ends = np.flatnonzero(ids == EOS)
  return int(ends[0]) + 1 if ends.size else len(ids)


def _reference_beam_search(setup, tokens, length, num_beams, alpha):
  """Plain-Python beam search over HF log-probs (full recompute, no cache).

  T5X's rules without its early stop: per step the 2K best expansions; those
  ending in EOS, and at the last step all of them, are finished with score
  log-prob / ((5 + n) / 6) ** alpha; the K best others stay live.
  Returns ids [B, K, T], scores [B, K], and whether T5X's stopping test held
  before the last step for some example.
  """
  all_ids, all_scores, could_stop = [], [], False
  for row in np.asarray(tokens):
    live, finished = [((0,), 0.0)], []
    for step in range(length):
      seqs = np.array([s for s, _ in live])
      log_probs = _hf_log_probs(setup, np.repeat(row[None], len(live), 0), seqs)[:, -1]
      candidates = sorted(((lp + log_probs[j, v], s + (v,))
                           for j, (s, lp) in enumerate(live) for v in range(log_probs.shape[-1])),
                          key=lambda c: -c[0])[:2 * num_beams]
      penalty = ((5.0 + step + 1) / 6.0) ** alpha
      finished += [(lp / penalty, s) for lp, s in candidates
                   if s[-1] == EOS or step + 1 == length]
      live = [(s, lp) for lp, s in candidates if s[-1] != EOS][:num_beams]
      finished = sorted(finished, key=lambda f: -f[0])[:num_beams]
      best_possible = live[0][1] / max(((5.0 + step + 2) / 6.0) ** alpha,
                                       ((5.0 + length) / 6.0) ** alpha)
      if (step + 1 < length and len(finished) == num_beams
          and finished[-1][0] > best_possible):
        could_stop = True
    ids = np.zeros((num_beams, length), np.int64)
    for i, (_, s) in enumerate(finished):
      ids[i, :len(s) - 1] = s[1:]
    all_ids.append(ids)
    all_scores.append([f[0] for f in finished])
  return np.array(all_ids), np.array(all_scores), could_stop


def test_beam_search_equals_a_plain_reference_and_is_sorted():
  # Sharper next-token distributions, so EOS beams fill the finished pool
  # early and T5X's early stop is reached.
  setup = _setup("plain", seed=3, logits_scale=2.0)
  model, params, _ = setup
  ids, scores = beam(model, params, INPUTS, T, 3, 0.6)
  ids, scores = np.asarray(ids), np.asarray(scores)
  want_ids, want_scores, could_stop = _reference_beam_search(setup, INPUTS, T, 3, 0.6)
  assert could_stop, "test premise: the early stop should be reachable"
  assert ids.shape == (4, 3, T) and scores.shape == (4, 3)
  np.testing.assert_array_equal(ids, want_ids)
  np.testing.assert_allclose(scores, want_scores, atol=1e-4, rtol=0)
  assert (np.diff(scores, axis=1) <= 0).all()
  # Every score is the beam's own HF log-prob over T5X's length penalty.
  for b in range(4):
    for k in range(3):
      n = _length(ids[b, k])
      decoder_inputs = np.concatenate([[0], ids[b, k, :n - 1]])[None]
      lp = _hf_log_probs(setup, INPUTS[b:b + 1], decoder_inputs)[0]
      total = lp[np.arange(n), ids[b, k, :n]].sum()
      np.testing.assert_allclose(scores[b, k], total / ((5 + n) / 6) ** 0.6, atol=1e-4)


def test_one_beam_without_length_penalty_is_greedy():
  # With alpha = 0 a finished greedy prefix outscores every continuation of
  # the runner-up, so one beam must reproduce greedy decoding exactly.
  model, params, _ = _setup("prompt")
  ids, scores = beam(model, params, INPUTS, T, 1, 0.0)
  want = np.asarray(greedy(model, params, INPUTS, T))
  _premise_some_end_early_some_not(want)
  np.testing.assert_array_equal(np.asarray(ids)[:, 0], want)
  assert np.isfinite(np.asarray(scores)).all()


def test_enough_beams_find_the_exact_top_k():
  """With 7^2 beams on a vocab of 8 and T = 3, beam search keeps every live
  prefix, so its beams are the exact top 49 of all 400 possible outputs."""
  config = get_config("tiny", dropout_rate=0.0, vocab_size=8)
  model = Transformer(config)
  params = model_fixtures.random_params(config, seed=1, eos_boost=1.0)
  hf = _hf_model(config, params)
  tokens = np.array([[5, 6, 7, 2, 3, 1, 0], [4, 2, 1, 0, 0, 0, 0]], np.int32)  # ids < 8
  length, alpha = 3, 0.6
  ids, scores = beam(model, params, tokens, length, 49, alpha)
  words = [(v,) for v in range(8) if v != EOS]  # 7 one-token words
  outputs = [(EOS,)] + [w + (EOS,) for w in words]
  outputs += [w + u + (EOS,) for w in words for u in words]
  outputs += [w + u + x for w in words for u in words for x in words]  # no EOS
  assert len(outputs) == 1 + 7 + 49 + 343
  padded = np.array([o + (0,) * (length - len(o)) for o in outputs])
  decoder_inputs = np.pad(padded, ((0, 0), (1, 0)))[:, :-1]
  lengths = np.array([len(o) for o in outputs])
  for b in range(2):
    with torch.no_grad():
      logits = hf(input_ids=torch.tensor(np.repeat(tokens[b:b + 1], len(outputs), 0)),
                  attention_mask=torch.tensor(np.repeat(tokens[b:b + 1] > 0, len(outputs), 0)),
                  decoder_input_ids=torch.tensor(decoder_inputs)).logits
    lp = torch.log_softmax(logits.double(), -1).numpy()
    token_lp = np.take_along_axis(lp, padded[..., None], -1)[..., 0]
    totals = (token_lp * (np.arange(length) < lengths[:, None])).sum(-1)
    exact = totals / ((5 + lengths) / 6) ** alpha
    order = np.argsort(-exact)[:49]
    np.testing.assert_array_equal(np.asarray(ids[b]), padded[order])
    np.testing.assert_allclose(np.asarray(scores[b]), exact[order], atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------
# Scoring and rank classification.
# ----------------------------------------------------------------------------

TARGETS = np.array([[3, 4, 5, 1], [6, 1, 0, 0], [7, 8, 1, 0], [9, 10, 11, 1]], np.int32)


def _shift_right(targets):
  return np.pad(targets, ((0, 0), (1, 0)))[:, :-1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_score_is_the_negated_cross_entropy_sum(name):
  model, params, _ = _setup(name)
  batch = {"encoder_input_tokens": INPUTS, "decoder_input_tokens": _shift_right(TARGETS),
           "decoder_target_tokens": TARGETS}
  lp = _hf_log_probs(_setup(name), INPUTS, batch["decoder_input_tokens"])
  token_lp = np.take_along_axis(lp, TARGETS[..., None], -1)[..., 0]
  want = (token_lp * (TARGETS > 0)).sum(-1)
  got = np.asarray(score(model, params, batch))
  assert got.shape == (4,)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
  # T5X semantics: decoder_loss_weights, when given, decide which tokens count.
  weights = (TARGETS > 0).astype(np.float32)
  weights[0, 0] = 0.0
  weighted = np.asarray(score(model, params, dict(batch, decoder_loss_weights=weights)))
  np.testing.assert_allclose(weighted, (token_lp * weights).sum(-1), atol=1e-4, rtol=0)
  assert abs(weighted[0] - got[0]) > 1e-2


OPTIONS = np.array([TARGETS[:3], TARGETS[1:], TARGETS[[3, 0, 2]], TARGETS[[2, 2, 1]]])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_score_options_equals_score_on_the_expanded_batch(name):
  model, params, _ = _setup(name)
  got = np.asarray(score_options(model, params, INPUTS, OPTIONS))  # [B=4, C=3]
  flat = OPTIONS.reshape(12, 4)
  expanded = {"encoder_input_tokens": np.repeat(INPUTS, 3, 0),
              "decoder_input_tokens": _shift_right(flat), "decoder_target_tokens": flat}
  want = np.asarray(score(model, params, expanded)).reshape(4, 3)
  assert got.shape == (4, 3)
  # Equal up to float32 rounding (XLA's CPU kernels sum in a batch-size dependent
  # order); a row reading another example's keys/values would be off by > 1.
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
  assert np.ptp(want) > 1.0  # the options really differ
  # And one full forward per option (the encoder run C times), the reference.
  per_option = np.stack([score(model, params, {
      "encoder_input_tokens": INPUTS, "decoder_input_tokens": _shift_right(OPTIONS[:, c]),
      "decoder_target_tokens": OPTIONS[:, c]}) for c in range(3)], axis=1)
  np.testing.assert_allclose(got, per_option, rtol=1e-6, atol=0)


def test_shared_options_and_rank_classify():
  model, params, _ = _setup("plain")
  # [C, T], the same for every example.
  options = np.array([[3, 4, 5, 1], [9, 10, 11, 1], [12, 13, 14, 1]], np.int32)
  rows = {"encoder_input_tokens": np.repeat(INPUTS, 3, 0),
          "decoder_input_tokens": _shift_right(np.tile(options, (4, 1))),
          "decoder_target_tokens": np.tile(options, (4, 1))}
  want = np.asarray(score(model, params, rows)).reshape(4, 3)
  best, scores = model_fixtures.rank_classify(model, params, INPUTS, options)
  np.testing.assert_allclose(scores, want, atol=1e-5, rtol=0)
  np.testing.assert_array_equal(best, want.argmax(-1))
  assert len(set(want.argmax(-1).tolist())) > 1  # not the same answer everywhere


def test_score_options_runs_the_encoder_once_per_example():
  calls = []

  class CountingTransformer(Transformer):
    def encode(self, encoder_input_tokens, enable_dropout=False, prompt_ids=None):
      calls.append(encoder_input_tokens.shape)
      return super().encode(encoder_input_tokens, enable_dropout, prompt_ids)

  _, params, _ = _setup("plain")
  options = np.broadcast_to(TARGETS[:3], (4, 3, 4))
  jax.make_jaxpr(functools.partial(decoding.score_options, CountingTransformer(
      TINY)))(params, INPUTS, options)
  assert calls == [(4, 7)]


def _dense_inputs(fn, *args) -> dict:
  """{module path: [input shapes]} of every dense layer `fn(*args)` calls (traced only)."""
  seen = {}

  def record(next_fun, call_args, kwargs, context):
    if isinstance(context.module, nn.Dense):
      seen.setdefault("/".join(context.module.path), []).append(call_args[0].shape)
    return next_fun(*call_args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(fn, *args)
  return seen


def test_cross_attention_keys_values_are_projected_once_per_example():
  _, params, _ = _setup("plain")
  b, length, c, t = 4, INPUTS.shape[1], OPTIONS.shape[1], OPTIONS.shape[2]
  seen = _dense_inputs(functools.partial(decoding.score_options, MODELS["plain"]), params,
                       INPUTS, OPTIONS)
  cross = {p: s for p, s in seen.items() if "encoder_decoder_attention" in p}
  assert len(cross) == 4 * TINY.num_decoder_layers
  for path, shapes in cross.items():
    # key/value: one call on [B, S, D]; query/out: the [B * C, T, .] option rows.
    want = (b, length, TINY.emb_dim) if path.endswith(("/key", "/value")) else (b * c, t, 16)
    assert shapes == [want], (path, shapes)
  encoder = {p: s for p, s in seen.items() if p.startswith("encoder/")}
  assert encoder and all(s == [(b, length, 16)] or s == [(b, length, TINY.mlp_dim)]
                         for s in encoder.values())


def test_compiled_cost_drops_by_the_repeated_key_value_projections():
  model, params, _ = _setup("plain")
  b, length, c = 4, INPUTS.shape[1], OPTIONS.shape[1]
  naive = jax.jit(repeated_encodings_scores, static_argnums=0)
  np.testing.assert_allclose(naive(model, params, INPUTS, OPTIONS),
                             score_options(model, params, INPUTS, OPTIONS), rtol=1e-6)

  def flops(fn):
    cost = jax.jit(fn, static_argnums=0).lower(model, params, INPUTS, OPTIONS).compile()
    cost = cost.cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]

  saved = flops(repeated_encodings_scores) - flops(decoding.score_options)
  # Per decoder layer, key and value: 2 * rows * S * D * (N * K) flops on (C - 1) * B
  # fewer rows; everything else is the same work.
  nk = TINY.num_heads * TINY.head_dim
  want = TINY.num_decoder_layers * 2 * 2 * (c - 1) * b * length * TINY.emb_dim * nk
  assert saved == pytest.approx(want, rel=0.02)


def test_predict_dispatches_to_greedy_beam_and_sampling():
  model, params, _ = _setup("plain")
  predict = jax.jit(decoding.predict, static_argnums=(0, 3),
                    static_argnames=("num_beams", "temperature"))
  rng = jax.random.PRNGKey(5)
  np.testing.assert_array_equal(predict(model, params, INPUTS, T),
                                greedy(model, params, INPUTS, T))
  np.testing.assert_array_equal(predict(model, params, INPUTS, T, num_beams=3, alpha=0.6),
                                beam(model, params, INPUTS, T, 3, 0.6)[0][:, 0])
  np.testing.assert_array_equal(predict(model, params, INPUTS, T, temperature=1.5, rng=rng),
                                sample(model, params, INPUTS, T, rng, temperature=1.5))


# ----------------------------------------------------------------------------
# Bad arguments.
# ----------------------------------------------------------------------------

def test_bad_arguments_raise_with_the_expected_value():
  model, params, _ = _setup("plain")
  rng = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match=r"num_beams=0; expected >= 1"):
    decoding.beam_search(model, params, INPUTS, T, 0)
  with pytest.raises(ValueError, match=r"temperature=-1.0; expected >= 0"):
    decoding.sample_decode(model, params, INPUTS, T, rng, temperature=-1.0)
  with pytest.raises(ValueError, match=r"top_p=0.0; expected in \(0, 1\]"):
    decoding.sample_decode(model, params, INPUTS, T, rng, top_p=0.0)
  with pytest.raises(ValueError, match=r"top_k=65; expected 0 \(off\) to vocab_size=64"):
    decoding.sample_decode(model, params, INPUTS, T, rng, top_k=65)
  with pytest.raises(ValueError, match=r"max_decode_length=0; expected >= 1"):
    decoding.greedy_decode(model, params, INPUTS, 0)
  with pytest.raises(ValueError, match=r"shape \(7,\); expected \[batch, length\]"):
    decoding.greedy_decode(model, params, INPUTS[0], T)
  with pytest.raises(ValueError, match=r"\(3, 2, 4\); expected \[batch=4, options"):
    decoding.score_options(model, params, INPUTS, np.ones((3, 2, 4), np.int32))
  encoded, mask = encode(model, params, INPUTS)  # [B=4, S, D]: 7 option rows do not split
  decode = functools.partial(model.apply, {"params": params}, method="decode")
  with pytest.raises(ValueError, match=r"decoder_input_tokens has 7 rows and encoded has 4; "
                                       r"expected a multiple of 4"):
    decode(encoded, mask, np.ones((7, 3), np.int32))
  with pytest.raises(ValueError, match=r"encoder_mask has shape \(1, 7\); expected one row "
                                       r"per row of encoded \(4, 7, 16\)"):
    decode(encoded, mask[:1], np.ones((8, 3), np.int32))
  with pytest.raises(ValueError, match=r"expected an rng key"):
    decoding.predict(model, params, INPUTS, T, temperature=1.0)
  with pytest.raises(ValueError, match=r"one of beam search or sampling"):
    decoding.predict(model, params, INPUTS, T, num_beams=2, temperature=1.0, rng=rng)
