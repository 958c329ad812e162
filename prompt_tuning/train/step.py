"""The pure train step: one optimizer update of the trainable parameters.

Only the trainable subtree is differentiated: `jax.value_and_grad` is taken
with respect to `state.trainable` alone, the frozen params enter as a separate
(never donated) argument, so XLA computes no weight gradients and the optimizer
holds no state for frozen weights. Compare google-research/prompt-tuning, which
computes every gradient and masks the updates afterwards.
"""
import functools
from typing import Any, Mapping

import jax
import optax

from prompt_tuning.losses import LossConfig, loss_fn
from prompt_tuning.train.state import TrainState

Array = jax.Array
Batch = Mapping[str, Array]
Params = Any


def train_step(state: TrainState, frozen: Params, batch: Batch, *, model,
               tx: optax.GradientTransformation,
               loss_cfg: LossConfig) -> tuple[TrainState, dict]:
  """One update of the trainable params ([P, D] prompt by default). Pure."""
  rng = jax.random.fold_in(state.rng, state.step)  # resume replays the same dropout
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, metrics), grads = grad_fn(state.trainable, frozen, batch, rng, model=model,
                                   loss_cfg=loss_cfg)
  updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
  trainable = optax.apply_updates(state.trainable, updates)
  new_state = state.replace(step=state.step + 1, trainable=trainable,
                            opt_state=opt_state)
  return new_state, {"loss": loss, "grad_norm": optax.global_norm(grads),
                     "trainable_norm": optax.global_norm(trainable), **metrics}


def jit_train_step(model, tx: optax.GradientTransformation, loss_cfg: LossConfig,
                   in_shardings=None, out_shardings=None):
  """`train_step` bound and jitted; the state (argument 0) is donated.

  With `in_shardings` (state, frozen, batch) and `out_shardings` (state,
  metrics) from `prompt_tuning.sharding`, XLA partitions the step over the mesh.
  """
  shardings = ({} if in_shardings is None else
               {"in_shardings": in_shardings, "out_shardings": out_shardings})
  return jax.jit(functools.partial(train_step, model=model, tx=tx, loss_cfg=loss_cfg),
                 donate_argnums=(0,), **shardings)


