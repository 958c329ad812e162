"""Scoring for the T5 encoder-decoder: T5X `score_batch` and rank classification.

`score` sums target-token log-probs per example (no length normalisation);
`score_options` scores C candidate targets per example with one encoder pass
and one cross-attention key/value projection per example; `rank_classify`
takes their argmax. Pure and jittable. With prompt banks each
takes `prompt_ids` [B] (in `score`, the batch's "prompt_ids" feature).

Dimension letters: B batch, L encoder input length, S encoder output length,
T target length, V vocab, C options.
"""
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp

from prompt_tuning.models.t5 import Transformer, encode

Array = jax.Array
Params = Any

def _sequence_log_probs(logits: Array, targets: Array, weights: Array) -> Array:
  """[B, T, V] logits, [B, T] targets and weights -> [B] weighted log-prob sums."""
  logits = logits.astype(jnp.float32)
  target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  token_log_probs = target_logits - jax.nn.logsumexp(logits, axis=-1)
  return jnp.sum(token_log_probs * weights, axis=-1)


def score(model: Transformer, params: Params, batch: Mapping[str, Array]) -> Array:
  """Per-example log-likelihood of the targets, as T5X's `score_batch`.

  Args:
    model: the `Transformer`.
    params: its params.
    batch: [B, L] `encoder_input_tokens`, [B, T] `decoder_input_tokens`
      (targets shifted right, start 0) and `decoder_target_tokens` (0 =
      padding). `decoder_loss_weights` [B, T], if present, weights the tokens
      as in T5X; otherwise a token counts when its target is not 0.
      `prompt_ids` [B], if present, picks each example's prompt of a bank.

  Returns:
    [B] float32 sums of target-token log-probs (no length normalisation).
  """
  targets = batch["decoder_target_tokens"]
  logits = model.apply({"params": params}, batch["encoder_input_tokens"],
                       batch["decoder_input_tokens"], targets,
                       prompt_ids=batch.get("prompt_ids"))
  weights = batch.get("decoder_loss_weights")
  if weights is None:
    weights = targets > 0
  return _sequence_log_probs(logits, targets, weights.astype(jnp.float32))


def _shift_right(targets: Array) -> Array:
  """[N, T] targets -> decoder inputs: start token 0, then targets[:, :-1]."""
  return jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]


def score_options(model: Transformer, params: Params, encoder_input_tokens: Array,
                  option_targets: Array, prompt_ids: Optional[Array] = None) -> Array:
  """Scores C candidate targets per example with one encoder pass per example.

  Rank classification: the encoder runs once per example, and so does each
  decoder layer's cross-attention key/value projection: the decoder takes the
  [B, S, D] encodings with [B * C, T] option rows (row b * C + c is option c
  of example b) and the C rows share example b's keys/values. Each option's
  score is what `score` gives it on the expanded batch or alone, up to float32
  rounding (XLA's CPU kernels may sum in a batch-size dependent order).

  Args:
    model: the `Transformer`.
    params: its params.
    encoder_input_tokens: [B, L] ids, 0 = padding.
    option_targets: [B, C, T] target ids per example, or [C, T] shared by all
      examples; 0 = padding (e.g. after EOS).
    prompt_ids: [B] each example's prompt in the bank (None: one prompt).

  Returns:
    [B, C] float32 sums of target-token log-probs.
  """
  batch = encoder_input_tokens.shape[0]
  if option_targets.ndim == 2:
    option_targets = jnp.broadcast_to(option_targets, (batch,) + option_targets.shape)
  if option_targets.ndim != 3 or option_targets.shape[0] != batch:
    raise ValueError(f"option_targets has shape {option_targets.shape}; expected "
                     f"[batch={batch}, options, length] or [options, length].")
  _, num_options, length = option_targets.shape
  encoded, encoder_mask = encode(model, params, encoder_input_tokens, prompt_ids)
  # [B, C, T] -> [B * C, T]: row b * C + c is option c of example b. The
  # encodings stay [B, S, D]; a decoder prompt bank needs each row's id.
  targets = option_targets.reshape(batch * num_options, length)
  option_ids = (None if prompt_ids is None
                else jnp.repeat(jnp.asarray(prompt_ids), num_options, axis=0))
  logits = model.apply({"params": params}, encoded, encoder_mask, _shift_right(targets),
                       targets, prompt_ids=option_ids, method="decode")
  scores = _sequence_log_probs(logits, targets, (targets > 0).astype(jnp.float32))
  return scores.reshape(batch, num_options)


def rank_classify(model: Transformer, params: Params, encoder_input_tokens: Array,
                  option_targets: Array,
                  prompt_ids: Optional[Array] = None) -> tuple[Array, Array]:
  """Picks the most likely option per example.

  Args: as `score_options`.

  Returns:
    ([B] int32 index of the best option, [B, C] scores).
  """
  scores = score_options(model, params, encoder_input_tokens, option_targets, prompt_ids)
  return jnp.argmax(scores, axis=-1).astype(jnp.int32), scores
