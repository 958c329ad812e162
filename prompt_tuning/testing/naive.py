"""Naive twins of fast paths, kept as what the tests and benchmarks compare them with.

- `repeated_encodings_scores`: rank classification as `scoring.score_options`
  did it before the decoder shared each example's cross-attention keys/values:
  the [B, S, D] encodings repeated to [B * C, S, D], so every decoder layer
  projects them C times. Same scores up to float32 rounding, more work
  (tests/test_decoding.py, benchmarks/rank_classification.py).
"""
from typing import Any, Optional

import jax
import jax.numpy as jnp

from prompt_tuning.models import encode, scoring

Array = jax.Array


def repeated_encodings_scores(model: Any, params: Any, encoder_input_tokens: Array,
                              option_targets: Array,
                              prompt_ids: Optional[Array] = None) -> Array:
  """[B, L] inputs, [B, C, T] options -> [B, C] scores, the encodings repeated per option."""
  # pylint: disable=protected-access
  batch, num_options, length = option_targets.shape
  encoded, mask = encode(model, params, encoder_input_tokens, prompt_ids)
  targets = option_targets.reshape(batch * num_options, length)
  option_ids = None if prompt_ids is None else jnp.repeat(prompt_ids, num_options, axis=0)
  logits = model.apply({"params": params}, jnp.repeat(encoded, num_options, axis=0),
                       jnp.repeat(mask, num_options, axis=0), scoring._shift_right(targets),
                       targets, prompt_ids=option_ids, method="decode")
  scores = scoring._sequence_log_probs(logits, targets, (targets > 0).astype(jnp.float32))
  return scores.reshape(batch, num_options)
