"""The soft prompt: a [P, D] parameter and how it joins the embedded input.

The prompt lives at `PROMPT_PATH` in the parameter tree; an optional decoder
prompt at `DECODER_PROMPT_PATH`. The trainable regex, the `.npy` export and
the PEFT mapping all derive from these constants (`PROMPT_PATHS`).
"""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# Path of the prompt in the model's parameter tree ("/"-joined).
PROMPT_PATH = "encoder/prompt/prompt"
# Path of the optional decoder prompt (T5Config.decoder_prompt_length > 0).
DECODER_PROMPT_PATH = "decoder/prompt/prompt"
# Every soft-prompt path, encoder first.
PROMPT_PATHS = (PROMPT_PATH, DECODER_PROMPT_PATH)
# The path google-research/prompt-tuning (flaxformer) stores it under.
REFERENCE_PROMPT_PATH = "encoder/prompt/prompt/prompt"


def uniform_symmetric(scale: float = 0.5) -> Callable[..., Array]:
  """Initializer sampling U[-scale, scale] (the paper's random init, scale 0.5).

  Note `flax.linen.initializers.uniform(0.5)` samples [0, 0.5): not the same.
  """
  def init(rng, shape, dtype=jnp.float32):
    return jax.random.uniform(rng, shape, dtype, minval=-scale, maxval=scale)
  return init


class Prompt(nn.Module):
  """Holds the [P, D] soft prompt, float32 whatever the activation dtype.

  Its axes (`prompt`, `prompt_embed`) are kept replicated by the sharding rules:
  the prompt is small and every device needs all of it.
  """
  length: int
  init: Callable[..., Array] = uniform_symmetric(0.5)

  @nn.compact
  def __call__(self, d_model: int) -> Array:
    """Returns the [P, D] prompt."""
    return self.param("prompt",
                      nn.with_logical_partitioning(self.init, ("prompt", "prompt_embed")),
                      (self.length, d_model), jnp.float32)


def _broadcast(prompt: Array, embedded: Array) -> Array:
  """[P, D] -> [B, P, D] in the activation dtype of `embedded`."""
  batch = embedded.shape[0]
  return jnp.broadcast_to(prompt.astype(embedded.dtype), (batch,) + prompt.shape)


def combine_prefix(prompt: Array, embedded: Array, mask: Array) -> tuple[Array, Array]:
  """Puts the soft prompt in front of the embedded encoder input.

  Args:
    prompt: [P, D] prompt.
    embedded: [B, L, D] token embeddings.
    mask: [B, L] 1 for real tokens, 0 for padding.

  Returns:
    [B, P + L, D] embeddings and their [B, P + L] mask (prompt positions are 1).
  """
  prompt_mask = jnp.ones((embedded.shape[0], prompt.shape[0]), mask.dtype)
  return (jnp.concatenate([_broadcast(prompt, embedded), embedded], axis=1),
          jnp.concatenate([prompt_mask, mask], axis=1))


def combine_after_bos(prompt: Array, embedded: Array,
                      mask: Array) -> tuple[Array, Array]:
  """Inserts the prompt after the first input token (for models fed a BOS).

  Args/Returns as `combine_prefix`: [B, 1 + P + (L - 1), D] and its mask.
  """
  prompt_b = _broadcast(prompt, embedded)
  ones = jnp.ones(prompt_b.shape[:2], mask.dtype)
  return (jnp.concatenate([embedded[:, :1], prompt_b, embedded[:, 1:]], axis=1),
          jnp.concatenate([mask[:, :1], ones, mask[:, 1:]], axis=1))


def combine_suffix(prompt: Array, embedded: Array, mask: Array) -> tuple[Array, Array]:
  """Places the prompt right after each example's last real token.

  Padding moves behind the prompt, so relative positions between input and
  prompt are the same for every example whatever its length.

  Args:
    prompt: [P, D] prompt.
    embedded: [B, L, D] token embeddings (padding at the end).
    mask: [B, L] 1 for real tokens, 0 for padding.

  Returns:
    [B, L + P, D] embeddings and their [B, L + P] mask.
  """
  p, length = prompt.shape[0], embedded.shape[1]
  lengths = jnp.sum(mask > 0, axis=1)  # [B]
  joined = jnp.concatenate([embedded, _broadcast(prompt, embedded)], axis=1)
  pos = jnp.arange(length + p)[None, :]  # [1, L + P]
  in_prompt = (pos >= lengths[:, None]) & (pos < lengths[:, None] + p)
  # Source index into `joined`: tokens stay, prompt rows come from L.., padding
  # rows (after the prompt) read the padding slots of `embedded`.
  src = jnp.where(pos < lengths[:, None], pos,
                  jnp.where(in_prompt, length + pos - lengths[:, None],
                            jnp.minimum(pos - p, length - 1)))
  combined = jnp.take_along_axis(joined, src[:, :, None], axis=1)
  new_mask = ((pos < lengths[:, None]) | in_prompt).astype(mask.dtype)
  return combined, new_mask


COMBINE_FUNCTIONS = {
    "prefix": combine_prefix,
    "after_bos": combine_after_bos,
    "suffix": combine_suffix,
}


def get_combine_fn(name: str):
  if name not in COMBINE_FUNCTIONS:
    raise ValueError(f"prompt combination {name!r}; expected one of "
                     f"{sorted(COMBINE_FUNCTIONS)}.")
  return COMBINE_FUNCTIONS[name]
