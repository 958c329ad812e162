"""What a prompt-tuning run carries from step to step, and nothing else.

The frozen model is not here: it is a separate argument of every step, read
from INITIAL_CHECKPOINT_PATH and never written back. A checkpoint of this state
is therefore tiny (the prompt and its optimizer slots), and resuming needs the
same INITIAL_CHECKPOINT_PATH.
"""
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

Params = Any


@flax.struct.dataclass
class TrainState:
  """The trainable subtree and its optimizer state.

  Attributes:
    step: [] int32, prompt-tuning steps taken (not the pretrained model's step).
    trainable: params matched by TRAINABLE_REGEX ([P, D] prompt by default).
    opt_state: optax state for `trainable` only.
    rng: [2] uint32 base key; step s uses `fold_in(rng, s)`.
  """
  step: jax.Array
  trainable: Params
  opt_state: optax.OptState
  rng: jax.Array

  @classmethod
  def create(cls, trainable: Params, tx: optax.GradientTransformation,
             rng: jax.Array) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), trainable=trainable,
               opt_state=tx.init(trainable), rng=rng)
