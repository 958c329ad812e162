"""The loss, as T5X computes it, of a (trainable, frozen) parameter split.

`cross_entropy` is T5X's weighted token cross-entropy (z-loss, label
smoothing, loss normalisation); `loss_fn` runs the model on a batch and takes
it; `eval_step` is the deterministic, jittable evaluation of it. The train
step (prompt_tuning.train.step) differentiates `loss_fn` with respect to the
trainable part only.
"""
import dataclasses
import functools
from typing import Any, Mapping, Optional, Union

import jax
import jax.numpy as jnp

from prompt_tuning import tree

Array = jax.Array
Batch = Mapping[str, Array]
Params = Any

# T5X's loss-normalizing-factor names (t5x.losses.SpecialLossNormalizingFactor).
NORMALIZERS = ("NUM_REAL_TARGET_TOKENS", "NUM_TOTAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE")


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """T5X's loss settings.

  Attributes:
    z_loss: coefficient of log(Z)^2 per token (T5X: 1e-4); keeps logits
      normalised, as in Mesh TF.
    label_smoothing: mass spread uniformly over the other V - 1 tokens. The
      loss subtracts the entropy of the smoothed target, so a perfect model
      still has loss 0 (T5X's normalizing constant).
    loss_normalizing_factor: None sums the token losses over the batch (T5X's
      default, and the reference prompt-tuning runs'); a number divides the
      sum by it; or one of `NORMALIZERS`: "NUM_REAL_TARGET_TOKENS" (mean over
      non-padding tokens), "NUM_TOTAL_TARGET_TOKENS" (over B * T),
      "AVERAGE_PER_SEQUENCE" (mean over examples of each example's token mean).
  """
  z_loss: float = 1e-4
  label_smoothing: float = 0.0
  loss_normalizing_factor: Optional[Union[float, str]] = None

  def __post_init__(self):
    lnf = self.loss_normalizing_factor
    if isinstance(lnf, str) and lnf not in NORMALIZERS:
      raise ValueError(f"loss_normalizing_factor={lnf!r}; expected None, a number or "
                       f"one of {NORMALIZERS}.")
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f"label_smoothing={self.label_smoothing}; expected [0, 1).")


def normalized_weights(weights: Array, cfg: LossConfig) -> Array:
  """[B, T] loss weights divided by the batch's loss normalizing factor.

  The loss is sum(token_loss * normalized_weights). The factor is the whole
  batch's (its real tokens, B * T, or B for per-sequence averages), so a
  microbatch that takes its rows of these weights contributes exactly its
  share of the batch's loss and gradient.
  """
  weights = weights.astype(jnp.float32)
  lnf = cfg.loss_normalizing_factor
  if lnf == "AVERAGE_PER_SEQUENCE":
    per_seq = jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1.0)
    return weights / per_seq / weights.shape[0]
  if lnf is None:
    denom = 1.0
  elif lnf == "NUM_REAL_TARGET_TOKENS":
    denom = jnp.maximum(jnp.sum(weights), 1.0)
  elif lnf == "NUM_TOTAL_TARGET_TOKENS":
    denom = float(weights.size)
  else:
    denom = float(lnf)
  return weights / denom


def cross_entropy(logits: Array, targets: Array, weights: Array, cfg: LossConfig,
                  norm_weights: Optional[Array] = None) -> tuple[Array, dict]:
  """T5X's weighted token cross-entropy with z-loss and label smoothing.

  Args:
    logits: [B, T, V] float32.
    targets: [B, T] target ids.
    weights: [B, T] loss weights; 0 at padding.
    cfg: loss settings.
    norm_weights: [B, T] `normalized_weights` of a larger batch these rows
      belong to (microbatching); None normalizes over these rows.

  Returns:
    The scalar loss that is optimized and metrics: `z_loss` (its z part,
    normalised the same way), `cross_entropy` (summed over real tokens, no z,
    no smoothing), `accuracy` (correct real tokens) and `num_tokens`.
  """
  vocab = logits.shape[-1]
  weights = weights.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)  # [B, T]
  log_probs = logits - log_z[..., None]  # [B, T, V]
  target_lp = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  if cfg.label_smoothing:
    # Soft targets: confidence on the target, low_conf on each other token;
    # minus their entropy so the minimum stays at 0 (T5X).
    conf = 1.0 - cfg.label_smoothing
    low = cfg.label_smoothing / (vocab - 1)
    token_loss = -((conf - low) * target_lp + low * jnp.sum(log_probs, axis=-1))
    token_loss -= -(conf * jnp.log(conf) + (vocab - 1) * low * jnp.log(low + 1e-20))
  else:
    token_loss = -target_lp
  token_z = cfg.z_loss * jnp.square(log_z)
  if norm_weights is None:
    norm_weights = normalized_weights(weights, cfg)
  z_loss = jnp.sum(token_z * norm_weights)
  loss = jnp.sum(token_loss * norm_weights) + z_loss
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  metrics = {"z_loss": z_loss,
             "cross_entropy": jnp.sum(-target_lp * weights),
             "accuracy": jnp.sum(correct * weights),
             "num_tokens": jnp.sum(weights)}
  return loss, metrics


def loss_fn(trainable: Params, frozen: Params, batch: Batch, rng: Optional[Array], *,
            model, loss_cfg: LossConfig,
            norm_weights: Optional[Array] = None) -> tuple[Array, dict]:
  """Loss of the merged params on one batch; dropout on iff `rng` is given.

  Args:
    trainable: the trainable subtree (the only one differentiated).
    frozen: everything else, possibly bfloat16.
    batch: EncDecFeatureConverter features: [B, L] `encoder_input_tokens`,
      [B, T] `decoder_input_tokens`, `decoder_target_tokens`,
      `decoder_loss_weights` (0 = padding); with a prompt bank also
      `prompt_ids` [B], each example's prompt (a prompt no example uses gets
      a zero gradient).
    rng: dropout key, or None for deterministic evaluation.
    norm_weights: see `cross_entropy` (microbatches of a larger batch).
  """
  params = tree.merge(trainable, frozen)
  rngs = {"dropout": rng} if rng is not None else None
  logits = model.apply({"params": params}, batch["encoder_input_tokens"],
                       batch["decoder_input_tokens"], batch["decoder_target_tokens"],
                       enable_dropout=rng is not None, prompt_ids=batch.get("prompt_ids"),
                       rngs=rngs)
  return cross_entropy(logits, batch["decoder_target_tokens"],
                       batch["decoder_loss_weights"], loss_cfg, norm_weights)


def eval_step(trainable: Params, frozen: Params, batch: Batch, *, model,
              loss_cfg: LossConfig) -> dict:
  """Teacher-forced loss metrics without dropout (sums; divide by num_tokens)."""
  loss, metrics = loss_fn(trainable, frozen, batch, None, model=model, loss_cfg=loss_cfg)
  return {"loss": loss, **metrics}


def jit_eval_step(model, loss_cfg: LossConfig):
  """`eval_step` bound to a model and loss settings, jitted."""
  return jax.jit(functools.partial(eval_step, model=model, loss_cfg=loss_cfg))
