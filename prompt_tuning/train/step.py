"""The pure train step: one optimizer update of the trainable parameters.

Only the trainable subtree is differentiated: `jax.value_and_grad` is taken
with respect to `state.trainable` alone, the frozen params enter as a separate
(never donated) argument, so XLA computes no weight gradients and the optimizer
holds no state for frozen weights. Compare google-research/prompt-tuning, which
computes every gradient and masks the updates afterwards.

Microbatching (T5X's `num_microbatches`): the [B, ...] batch is cut into M
consecutive [B / M, ...] slices, run one after another in a `jax.lax.scan`
(so only one slice's activations are alive) and their gradients summed. Each
slice's loss weights are normalised by the whole batch's factor
(`losses.normalized_weights`), so the summed loss and gradient are the
batch's own, up to float rounding. Dropout masks differ from the unsplit
batch's (each slice folds its index into the step's key).
"""
import functools
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from prompt_tuning.losses import LossConfig, loss_fn, normalized_weights
from prompt_tuning.train.state import TrainState

Array = jax.Array
Batch = Mapping[str, Array]
Params = Any


def check_microbatches(batch_size: int, num_microbatches: Optional[int]) -> int:
  """M, validated: None or 1 is no split; M must divide the batch."""
  if num_microbatches is None:
    return 1
  if (isinstance(num_microbatches, bool) or not isinstance(num_microbatches, int)
      or num_microbatches < 1):
    raise ValueError(f"num_microbatches={num_microbatches!r}; expected None or an int >= 1.")
  if batch_size % num_microbatches:
    raise ValueError(f"num_microbatches={num_microbatches} does not divide the batch of "
                     f"{batch_size} examples; expected a divisor of BATCH_SIZE (or the "
                     "per-host batch).")
  return num_microbatches


def loss_and_grads(trainable: Params, frozen: Params, batch: Batch, rng: Optional[Array], *,
                   model, loss_cfg: LossConfig,
                   num_microbatches: Optional[int] = None) -> tuple[tuple[Array, dict], Params]:
  """((loss, metrics), d loss / d trainable) of one batch, optionally in M slices.

  Metrics are sums over the batch (or the loss-normalised z part), so the
  slices' metrics add up to the batch's.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  weights = batch["decoder_loss_weights"]
  micro = check_microbatches(weights.shape[0], num_microbatches)
  if micro == 1:
    return grad_fn(trainable, frozen, batch, rng, model=model, loss_cfg=loss_cfg)
  norm = normalized_weights(weights, loss_cfg)  # the whole batch's factor
  # [B, ...] -> [M, B / M, ...]: slice m holds rows m * B / M onwards.
  split = lambda x: x.reshape((micro, x.shape[0] // micro) + x.shape[1:])
  slices = jax.tree.map(split, {"batch": dict(batch), "norm": norm})

  def one(carry, xs):
    index, sl = xs
    slice_rng = None if rng is None else jax.random.fold_in(rng, index)
    out = grad_fn(trainable, frozen, sl["batch"], slice_rng, model=model,
                  loss_cfg=loss_cfg, norm_weights=sl["norm"])
    return jax.tree.map(jnp.add, carry, out), None

  shapes = jax.eval_shape(
      lambda: grad_fn(trainable, frozen, jax.tree.map(lambda x: x[0], slices["batch"]),
                      rng, model=model, loss_cfg=loss_cfg,
                      norm_weights=slices["norm"][0]))
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  total, _ = jax.lax.scan(one, zeros, (jnp.arange(micro), slices))
  return total


def train_step(state: TrainState, frozen: Params, batch: Batch, *, model,
               tx: optax.GradientTransformation, loss_cfg: LossConfig,
               num_microbatches: Optional[int] = None) -> tuple[TrainState, dict]:
  """One update of the trainable params ([P, D] prompt by default). Pure."""
  rng = jax.random.fold_in(state.rng, state.step)  # resume replays the same dropout
  (loss, metrics), grads = loss_and_grads(state.trainable, frozen, batch, rng, model=model,
                                          loss_cfg=loss_cfg,
                                          num_microbatches=num_microbatches)
  updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
  trainable = optax.apply_updates(state.trainable, updates)
  new_state = state.replace(step=state.step + 1, trainable=trainable,
                            opt_state=opt_state)
  return new_state, {"loss": loss, "grad_norm": optax.global_norm(grads),
                     "trainable_norm": optax.global_norm(trainable), **metrics}


def jit_train_step(model, tx: optax.GradientTransformation, loss_cfg: LossConfig,
                   num_microbatches: Optional[int] = None, in_shardings=None,
                   out_shardings=None):
  """`train_step` bound and jitted; the state (argument 0) is donated.

  With `in_shardings` (state, frozen, batch) and `out_shardings` (state,
  metrics) from `prompt_tuning.sharding`, XLA partitions the step over the mesh.
  """
  shardings = ({} if in_shardings is None else
               {"in_shardings": in_shardings, "out_shardings": out_shardings})
  return jax.jit(functools.partial(train_step, model=model, tx=tx, loss_cfg=loss_cfg,
                                   num_microbatches=num_microbatches),
                 donate_argnums=(0,), **shardings)
