"""Decoding and scoring for the T5 encoder-decoder, as T5X does them.

Every function is pure and jittable (`model`, lengths, beam counts and sampling
settings are static; close over them or mark them static). The encoder runs
once per call; the decoder then steps one token at a time with the key/value
cache (`init_cache`) inside a `jax.lax.while_loop` that stops early once every
sequence is done.

Token conventions (T5 / seqio): 0 is padding and the decoder start token, 1 is
EOS. Decoded ids are [B, T] without the start token; positions after EOS are 0.

A decoder prompt (P positions) is written into the cache once per call, after
the encoder and before the first step (`_start_cache`); `max_decode_length`
still counts generated tokens only. With prompt banks every function takes
`prompt_ids` [B], each example's prompt (encoder and decoder alike), so one
call decodes examples of many tasks, or of many ensemble members, together.

Dimension letters: B batch, L encoder input length, S encoder output length
(P + L with a soft prompt), T decoder length, V vocab, C options, K beams.
"""
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from prompt_tuning.models.layers import NEG_INF
from prompt_tuning.models.t5 import Transformer, cache_batch_axis, encode, init_cache
# Scoring lives in its own module; re-exported here for one import path.
from prompt_tuning.models.scoring import rank_classify, score, score_options  # noqa: F401

Array = jax.Array
Params = Any
# NEG_INF stands for -inf in beam scores and masked logits; finite, so
# arithmetic on it (adding a log-prob, dividing by a length penalty) stays
# well defined.


# ----------------------------------------------------------------------------
# Encoder once, then cached decoder steps.
# ----------------------------------------------------------------------------

def _start_cache(model: Transformer, params: Params, encoded: Array,
                 encoder_mask: Array, max_decode_length: int,
                 prompt_ids: Optional[Array] = None) -> Params:
  """An empty cache for batch B, with the decoder prompt (if any) prefilled.

  Args:
    encoded: [B, S, D] encodings; encoder_mask: [B, S].
    max_decode_length: T_max, the tokens to generate.
    prompt_ids: [B] each row's prompt of a decoder-prompt bank.

  Returns:
    The "cache" collection: [B, P + T_max, N, K] keys/values, index P.
  """
  cache = init_cache(model, encoded.shape[0], max_decode_length)
  if model.decoder_prompt is None:
    return cache
  _, variables = model.apply(
      {"params": params, "cache": cache}, encoded, encoder_mask, max_decode_length,
      prompt_ids, method="prefill_decoder_prompt", mutable=["cache"])
  return variables["cache"]


def _decode_step(model: Transformer, params: Params, encoded: Array, encoder_mask: Array,
                 cache: Params, tokens: Array, max_decode_length: int):
  """One cached decoder step.

  Args:
    encoded: [B, S, D] encodings; encoder_mask: [B, S].
    cache: the "cache" collection for batch B and `max_decode_length`.
    tokens: [B] the previous token of every sequence.

  Returns:
    ([B, V] float32 logits for the next token, updated cache).
  """
  logits, variables = model.apply(
      {"params": params, "cache": cache}, encoded, encoder_mask, tokens[:, None],
      decode=True, max_decode_length=max_decode_length, method="decode",
      mutable=["cache"])
  return logits[:, 0], variables["cache"]


def _check_decode_args(encoder_input_tokens: Array, max_decode_length: int) -> None:
  if encoder_input_tokens.ndim != 2:
    raise ValueError(f"encoder_input_tokens has shape {encoder_input_tokens.shape}; "
                     "expected [batch, length].")
  if int(max_decode_length) < 1:
    raise ValueError(f"max_decode_length={max_decode_length}; expected >= 1.")


def _decode_loop(model: Transformer, params: Params, encoder_input_tokens: Array,
                 max_decode_length: int, eos_id: int,
                 choose: Callable[[Array, Array], Array],
                 prompt_ids: Optional[Array] = None) -> Array:
  """Decodes one token per step with `choose(logits [B, V], step) -> [B] ids`.

  Returns:
    [B, T] ids; after a sequence's EOS its positions are 0.
  """
  _check_decode_args(encoder_input_tokens, max_decode_length)
  encoded, encoder_mask = encode(model, params, encoder_input_tokens, prompt_ids)
  batch = encoder_input_tokens.shape[0]
  # Column 0 holds the decoder start token (0); column i + 1 the i-th output.
  seqs = jnp.zeros((batch, max_decode_length + 1), jnp.int32)
  state = (jnp.array(0, jnp.int32), seqs,
           _start_cache(model, params, encoded, encoder_mask, max_decode_length,
                        prompt_ids),
           jnp.zeros((batch,), bool))

  def not_done(state):
    i, _, _, finished = state
    return (i < max_decode_length) & ~jnp.all(finished)

  def step(state):
    i, seqs, cache, finished = state
    logits, cache = _decode_step(model, params, encoded, encoder_mask, cache,
                                 seqs[:, i], max_decode_length)
    ids = jnp.where(finished, 0, choose(logits, i).astype(jnp.int32))
    seqs = jax.lax.dynamic_update_slice(seqs, ids[:, None], (0, i + 1))
    return i + 1, seqs, cache, finished | (ids == eos_id)

  _, seqs, _, _ = jax.lax.while_loop(not_done, step, state)
  return seqs[:, 1:]


def greedy_decode(model: Transformer, params: Params, encoder_input_tokens: Array,
                  max_decode_length: int, eos_id: int = 1,
                  prompt_ids: Optional[Array] = None) -> Array:
  """Greedy (argmax) decoding with the key/value cache.

  Args:
    model: the `Transformer` (its prompt specs decide the soft prompts).
    params: its params.
    encoder_input_tokens: [B, L] ids, 0 = padding.
    max_decode_length: T, the most tokens generated per sequence.
    eos_id: ends a sequence (it is kept in the output).
    prompt_ids: [B] each example's prompt in the bank (None: one prompt).

  Returns:
    [B, T] int32 ids, 0 after EOS.
  """
  return _decode_loop(model, params, encoder_input_tokens, max_decode_length, eos_id,
                      lambda logits, i: jnp.argmax(logits, axis=-1), prompt_ids)


# ----------------------------------------------------------------------------
# Sampling.
# ----------------------------------------------------------------------------

def mask_top_k(logits: Array, k: int) -> Array:
  """Keeps the k largest logits of each row; the rest become NEG_INF.

  Args:
    logits: [..., V].
    k: 1 <= k <= V. Values tied with the k-th largest are kept too.

  Returns:
    [..., V] logits.
  """
  kth = jax.lax.top_k(logits, k)[0][..., -1:]
  return jnp.where(logits >= kth, logits, NEG_INF)


def mask_top_p(logits: Array, p: float) -> Array:
  """Nucleus filter: keeps the fewest most-likely tokens whose mass reaches p.

  A token is kept when the probability of the tokens ranked above it is < p,
  so the most likely token is always kept (Holtzman et al. 2020).

  Args:
    logits: [..., V].
    p: in (0, 1].

  Returns:
    [..., V] logits, dropped tokens NEG_INF.
  """
  ranked = jnp.sort(logits, axis=-1)[..., ::-1]
  probs = jax.nn.softmax(ranked, axis=-1)
  mass_above = jnp.cumsum(probs, axis=-1) - probs
  # The smallest kept logit; everything at least as large is kept.
  num_kept = jnp.sum(mass_above < p, axis=-1, keepdims=True)
  cutoff = jnp.take_along_axis(ranked, num_kept - 1, axis=-1)
  return jnp.where(logits >= cutoff, logits, NEG_INF)


def sample_logits(rng: Array, logits: Array, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> Array:
  """Draws one token per row: temperature, then top-k, then top-p (HF's order).

  Args:
    rng: a PRNG key.
    logits: [B, V].
    temperature: 0 means argmax.
    top_k: 0 keeps all tokens.
    top_p: 1.0 keeps all tokens.

  Returns:
    [B] int32 ids.
  """
  if temperature == 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  if top_k:
    logits = mask_top_k(logits, top_k)
  if top_p < 1.0:
    logits = mask_top_p(logits, top_p)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def _check_sampling_args(temperature: float, top_k: int, top_p: float, vocab: int):
  if temperature < 0:
    raise ValueError(f"temperature={temperature}; expected >= 0 (0 = greedy).")
  if not 0 <= top_k <= vocab:
    raise ValueError(f"top_k={top_k}; expected 0 (off) to vocab_size={vocab}.")
  if not 0 < top_p <= 1:
    raise ValueError(f"top_p={top_p}; expected in (0, 1] (1 = off).")


def sample_decode(model: Transformer, params: Params, encoder_input_tokens: Array,
                  max_decode_length: int, rng: Array, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, eos_id: int = 1,
                  prompt_ids: Optional[Array] = None) -> Array:
  """Temperature / top-k / top-p sampling with the key/value cache.

  Step i draws with `jax.random.fold_in(rng, i)`, so a seed gives the same ids
  whatever the batch is jitted with.

  Args:
    model, params, encoder_input_tokens, max_decode_length, eos_id,
      prompt_ids: as `greedy_decode`.
    rng: a PRNG key.
    temperature: divides the logits; 0 is greedy decoding.
    top_k: sample among the k most likely tokens (0 = all).
    top_p: sample among the smallest set with probability >= top_p (1 = all).
      temperature, top_k and top_p are Python numbers (static under jit).

  Returns:
    [B, T] int32 ids, 0 after EOS.
  """
  _check_sampling_args(temperature, top_k, top_p, model.config.vocab_size)

  def choose(logits, i):
    return sample_logits(jax.random.fold_in(rng, i), logits, temperature, top_k, top_p)

  return _decode_loop(model, params, encoder_input_tokens, max_decode_length, eos_id,
                      choose, prompt_ids)


# ----------------------------------------------------------------------------
# Beam search.
# ----------------------------------------------------------------------------

def length_penalty(length: Array, alpha: float) -> Array:
  """T5X's (GNMT's) brevity penalty ((5 + length) / 6) ** alpha; scores are divided by it."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


class _BeamState(NamedTuple):
  step: Array             # [] tokens generated so far
  live_seqs: Array        # [B, K, T + 1] start token first; no EOS yet
  live_log_probs: Array   # [B, K] sums of token log-probs, best first
  finished_seqs: Array    # [B, K, T + 1] ended by EOS (or by max length)
  finished_scores: Array  # [B, K] log-prob / length_penalty; NEG_INF = empty
  cache: Params           # decoder cache, batch B * K


def _gather(x: Array, indices: Array) -> Array:
  """[B, M, ...] gathered at [B, K] indices along axis 1 -> [B, K, ...]."""
  return jax.vmap(lambda row, idx: row[idx])(x, indices)


def _gather_cache(cache: Params, beams: Array, batch_axis: int = 0) -> Params:
  """Reorders the cache's B * K rows (on `batch_axis`) by [B, K] source-beam indices."""
  batch, num_beams = beams.shape

  def gather(x):
    if x.ndim <= batch_axis:  # cache_index ([] or [L]): shared by all beams
      return x
    x = jnp.moveaxis(x, batch_axis, 0)
    x = x.reshape((batch, num_beams) + x.shape[1:])
    x = _gather(x, beams).reshape((batch * num_beams,) + x.shape[2:])
    return jnp.moveaxis(x, 0, batch_axis)

  return jax.tree_util.tree_map(gather, cache)


def _cannot_improve(live_log_probs: Array, finished_scores: Array, step: Array,
                    max_decode_length: int, alpha: float) -> Array:
  """Whether no live beam can still displace a finished one (T5X's early stop).

  Log-probs only fall as a sequence grows, so a live beam's best reachable
  score is its log-prob over the largest penalty among the lengths still
  reachable, step + 1 .. T (the penalty is monotone in the length).

  Args:
    live_log_probs: [B, K] best first.
    finished_scores: [B, K] best first; NEG_INF marks an empty slot.
    step: tokens generated so far.

  Returns:
    [B] bool.
  """
  largest_penalty = jnp.maximum(length_penalty(step + 1, alpha),
                                length_penalty(max_decode_length, alpha))
  return finished_scores[:, -1] > live_log_probs[:, 0] / largest_penalty


def beam_search(model: Transformer, params: Params, encoder_input_tokens: Array,
                max_decode_length: int, num_beams: int, alpha: float = 0.6,
                eos_id: int = 1, prompt_ids: Optional[Array] = None
                ) -> tuple[Array, Array]:
  """Beam search with T5X's length penalty.

  As T5X: each step expands the K live beams, keeps the 2K best candidates
  by log-prob; those ending in EOS join the finished pool with score
  log-prob / length_penalty(length, alpha) (length counts the EOS), the K best
  others stay live. The search stops when no live beam can beat the worst
  finished one. Unlike T5X, which returns unnormalised live beams only when
  nothing finished, beams still live at `max_decode_length` join the finished
  pool scored like the rest (as Hugging Face does), so every returned score
  is length-penalised and comparable.

  Args:
    model, params, encoder_input_tokens, max_decode_length, eos_id,
      prompt_ids: as `greedy_decode`.
    num_beams: K.
    alpha: length-penalty exponent (T5X default 0.6; 0 = raw log-probs).

  Returns:
    ([B, K, T] int32 ids, 0 after EOS; [B, K] float32 scores), best first.
  """
  _check_decode_args(encoder_input_tokens, max_decode_length)
  if int(num_beams) < 1:
    raise ValueError(f"num_beams={num_beams}; expected >= 1.")
  batch, k, length = encoder_input_tokens.shape[0], int(num_beams), int(max_decode_length)
  encoded, encoder_mask = encode(model, params, encoder_input_tokens, prompt_ids)
  # [B, S, D] -> [B * K, S, D]: beam b * K + j of example b.
  encoded = jnp.repeat(encoded, k, axis=0)
  encoder_mask = jnp.repeat(encoder_mask, k, axis=0)
  beam_ids = None if prompt_ids is None else jnp.repeat(jnp.asarray(prompt_ids), k, axis=0)
  # All beams start from the same empty sequence; only the first is live.
  first_only = jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF)
  state = _BeamState(
      step=jnp.array(0, jnp.int32),
      live_seqs=jnp.zeros((batch, k, length + 1), jnp.int32),
      live_log_probs=jnp.broadcast_to(first_only, (batch, k)),
      finished_seqs=jnp.zeros((batch, k, length + 1), jnp.int32),
      finished_scores=jnp.full((batch, k), NEG_INF, jnp.float32),
      cache=_start_cache(model, params, encoded, encoder_mask, length, beam_ids))

  def not_done(s: _BeamState):
    return (s.step < length) & ~jnp.all(
        _cannot_improve(s.live_log_probs, s.finished_scores, s.step, length, alpha))

  def step(s: _BeamState):
    tokens = s.live_seqs[:, :, s.step].reshape(batch * k)
    logits, cache = _decode_step(model, params, encoded, encoder_mask, s.cache, tokens,
                                 length)
    log_probs = jax.nn.log_softmax(logits).reshape(batch, k, -1)  # [B, K, V]
    vocab = log_probs.shape[-1]
    candidates = (s.live_log_probs[:, :, None] + log_probs).reshape(batch, k * vocab)
    # [B, 2K] best candidates: source beam and new token of each.
    top_log_probs, top = jax.lax.top_k(candidates, 2 * k)
    source, ids = top // vocab, (top % vocab).astype(jnp.int32)
    seqs = _gather(s.live_seqs, source)
    seqs = jax.lax.dynamic_update_slice(seqs, ids[:, :, None], (0, 0, s.step + 1))
    ended = ids == eos_id

    # Live: the K best candidates that did not end.
    live_log_probs, keep = jax.lax.top_k(jnp.where(ended, NEG_INF, top_log_probs), k)
    live_seqs = _gather(seqs, keep)
    cache = _gather_cache(cache, _gather(source, keep), cache_batch_axis(model))

    # Finished: EOS candidates, and at the last step every candidate.
    done = ended | (s.step + 1 == length)
    scores = jnp.where(done, top_log_probs / length_penalty(s.step + 1, alpha), NEG_INF)
    pool_scores = jnp.concatenate([s.finished_scores, scores], axis=1)
    pool_seqs = jnp.concatenate([s.finished_seqs, seqs], axis=1)
    finished_scores, best = jax.lax.top_k(pool_scores, k)
    return _BeamState(s.step + 1, live_seqs, live_log_probs, _gather(pool_seqs, best),
                      finished_scores, cache)

  final = jax.lax.while_loop(not_done, step, state)
  return final.finished_seqs[:, :, 1:], final.finished_scores


def predict(model: Transformer, params: Params, encoder_input_tokens: Array,
            max_decode_length: int, *, num_beams: int = 1, alpha: float = 0.6,
            temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
            rng: Optional[Array] = None, eos_id: int = 1,
            prompt_ids: Optional[Array] = None) -> Array:
  """Decodes with the method the settings name: beams > 1, sampling, or greedy.

  Args:
    num_beams: > 1 runs `beam_search` and returns its best beam.
    alpha: beam search length-penalty exponent.
    temperature, top_k, top_p: `sample_decode` settings; temperature > 0
      needs `rng`. Sampling and beams > 1 do not combine.
    Others: as `greedy_decode`.

  Returns:
    [B, T] int32 ids, 0 after EOS.
  """
  if num_beams > 1:
    if temperature > 0:
      raise ValueError(f"num_beams={num_beams} with temperature={temperature}; "
                       "expected one of beam search or sampling.")
    ids, _ = beam_search(model, params, encoder_input_tokens, max_decode_length,
                         num_beams, alpha, eos_id, prompt_ids)
    return ids[:, 0]
  if temperature > 0:
    if rng is None:
      raise ValueError(f"temperature={temperature} samples; expected an rng key.")
    return sample_decode(model, params, encoder_input_tokens, max_decode_length, rng,
                         temperature, top_k, top_p, eos_id, prompt_ids)
  return greedy_decode(model, params, encoder_input_tokens, max_decode_length, eos_id,
                       prompt_ids)
