"""The soft prompt in the model: a [P, D] prompt or [K, P, D] bank, and how it joins the input.

`Prompt` holds the parameter described by a `PromptSpec` and returns one
prompt per example, `[B, P, D]`: the single prompt broadcast over the batch,
or, for a bank, row `prompt_ids[b]` for example b (`select`). The combine
functions then put those per-example prompts into the embedded input:

  prefix     [prompt, tokens]             (the paper's setting)
  after_bos  [first token, prompt, rest]  (for inputs that start with a BOS)
  suffix     [tokens, prompt, padding]    (right after each example's last token)

Dimension letters: B batch, K prompts in a bank, P prompt length, L input
length, D d_model.
"""
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning.prompts import multitask as multitask_lib, spec as spec_lib

Array = jax.Array
# Re-exported: the paths are the spec module's, named here for one import.
PROMPT_PATH = spec_lib.PROMPT_PATH
DECODER_PROMPT_PATH = spec_lib.DECODER_PROMPT_PATH
PROMPT_PATHS = spec_lib.PROMPT_PATHS
REFERENCE_PROMPT_PATH = spec_lib.REFERENCE_PROMPT_PATH


def uniform_symmetric(scale: float = 0.5) -> Callable[..., Array]:
  """Initializer sampling U[-scale, scale] (the paper's random init, scale 0.5).

  Note `flax.linen.initializers.uniform(0.5)` samples [0, 0.5): not the same.
  """
  def init(rng, shape, dtype=jnp.float32):
    return jax.random.uniform(rng, shape, dtype, minval=-scale, maxval=scale)
  return init


def check_prompt_ids(prompt_ids, num_prompts: int, batch: int) -> None:
  """Validates per-example prompt ids at the edge of the model.

  Shapes are always checked. Values are checked when they are concrete (not
  traced under `jax.jit`); inside a jitted function an id outside [0, K)
  selects a NaN prompt instead (see `select`), so the bug cannot pass unseen.

  Raises:
    ValueError: ids that are not [B] integers, or outside [0, num_prompts).
  """
  shape = tuple(np.shape(prompt_ids))
  if shape != (batch,):
    raise ValueError(f"prompt_ids has shape {shape}; expected [batch] = ({batch},), one id "
                     "per example.")
  if not jnp.issubdtype(jnp.result_type(prompt_ids), jnp.integer):
    raise ValueError(f"prompt_ids has dtype {jnp.result_type(prompt_ids)}; expected integers.")
  if isinstance(prompt_ids, jax.core.Tracer):
    return
  ids = np.asarray(prompt_ids)
  bad = sorted(set(ids[(ids < 0) | (ids >= num_prompts)].tolist()))
  if bad:
    raise ValueError(f"prompt_ids {bad} are outside [0, {num_prompts}): the prompt bank holds "
                     f"{num_prompts} prompt{'s' if num_prompts > 1 else ''}.")


def select(bank: Array, prompt_ids: Optional[Array], batch: int) -> Array:
  """One prompt per example.

  Args:
    bank: [P, D] prompt or [K, P, D] bank.
    prompt_ids: [B] int ids into the bank; None only for a [P, D] prompt.
    batch: B.

  Returns:
    [B, P, D]: the prompt broadcast over the batch, or bank[prompt_ids[b]]
    for example b (NaN rows for ids outside [0, K) under jit).
  """
  if bank.ndim == 2 and prompt_ids is None:
    return jnp.broadcast_to(bank, (batch,) + bank.shape)
  num_prompts = bank.shape[0] if bank.ndim == 3 else 1
  if prompt_ids is None:
    raise ValueError(f"the prompt bank holds {num_prompts} prompts of shape {bank.shape[1:]}; "
                     "expected prompt_ids [batch] saying which prompt each example uses.")
  check_prompt_ids(prompt_ids, num_prompts, batch)
  bank = bank if bank.ndim == 3 else bank[None]
  ids = jnp.asarray(prompt_ids, jnp.int32)
  # jnp.take's fill mode wraps negative ids (-1 is the last prompt); send them past the
  # end too, so every id outside [0, K) gathers NaN.
  ids = jnp.where(ids < 0, num_prompts, ids)
  # A gather: the gradient of a prompt no example selected is exactly zero.
  return jnp.take(bank, ids, axis=0, mode="fill", fill_value=jnp.nan)


class Prompt(nn.Module):
  """Holds the prompt (or bank) of `spec`, float32 whatever the activation dtype.

  Its logical axes (`prompt_bank`, `prompt`, `prompt_embed`) are the spec's;
  a prompt is small and every device needs all of it, so they are not
  partitioned.
  """
  spec: spec_lib.PromptSpec

  @nn.compact
  def __call__(self, d_model: int, batch: int,
               prompt_ids: Optional[Array] = None) -> Array:
    """Returns the [B, P, D] per-example prompts."""
    if self.spec.multitask is not None:
      return select(self._multitask_bank(d_model), prompt_ids, batch)
    shape = self.spec.shape(d_model)
    if self.has_variable("params", "prompt"):  # given params must fit the spec
      self.spec.check(nn.unbox(self.get_variable("params", "prompt")), d_model)
    bank = self.param("prompt",
                      nn.with_logical_partitioning(uniform_symmetric(0.5), self.spec.axes),
                      shape, jnp.float32)
    return select(bank, prompt_ids, batch)

  def _multitask_bank(self, d_model: int) -> Array:
    """The [K, P, D] bank composed from shared and task params ([P, D] when K = 1)."""
    mt = self.spec.multitask
    shapes = mt.shapes(mt.shared_length_of(self.spec.length), d_model)
    given = self.variables.get("params", {})
    if given:  # given params must be this spec's
      mt.check(nn.unbox(dict(given)), d_model, self.spec.path)
    init = uniform_symmetric(0.5)
    params = {name: self.param(name, nn.with_logical_partitioning(init, axes), shapes[name],
                               jnp.float32)
              for name, axes in multitask_lib.PARAMS[mt.mode]}
    bank = multitask_lib.compose(mt, params)
    return bank if self.spec.is_bank else bank[0]


def combine_prefix(prompt: Array, embedded: Array, mask: Array) -> tuple[Array, Array]:
  """Puts the soft prompt in front of the embedded input.

  Args:
    prompt: [B, P, D] per-example prompts.
    embedded: [B, L, D] token embeddings.
    mask: [B, L] 1 for real tokens, 0 for padding.

  Returns:
    [B, P + L, D] embeddings and their [B, P + L] mask (prompt positions are 1).
  """
  prompt_mask = jnp.ones(prompt.shape[:2], mask.dtype)
  return (jnp.concatenate([prompt.astype(embedded.dtype), embedded], axis=1),
          jnp.concatenate([prompt_mask, mask], axis=1))


def combine_after_bos(prompt: Array, embedded: Array,
                      mask: Array) -> tuple[Array, Array]:
  """Inserts the prompt after the first input token (for models fed a BOS).

  The first token keeps its own mask value (a padded first position stays
  padding). Args/Returns as `combine_prefix`: [B, 1 + P + (L - 1), D].
  """
  ones = jnp.ones(prompt.shape[:2], mask.dtype)
  return (jnp.concatenate([embedded[:, :1], prompt.astype(embedded.dtype), embedded[:, 1:]],
                          axis=1),
          jnp.concatenate([mask[:, :1], ones, mask[:, 1:]], axis=1))


def combine_suffix(prompt: Array, embedded: Array, mask: Array) -> tuple[Array, Array]:
  """Places the prompt right after each example's last real token.

  Padding moves behind the prompt, so relative positions between input and
  prompt are the same for every example whatever its length.

  Args:
    prompt: [B, P, D] per-example prompts.
    embedded: [B, L, D] token embeddings (padding at the end).
    mask: [B, L] 1 for real tokens, 0 for padding.

  Returns:
    [B, L + P, D] embeddings and their [B, L + P] mask.
  """
  p, length = prompt.shape[1], embedded.shape[1]
  lengths = jnp.sum(mask > 0, axis=1)  # [B]
  joined = jnp.concatenate([embedded, prompt.astype(embedded.dtype)], axis=1)
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
  """The combine function called `name` ("prefix", "after_bos" or "suffix")."""
  if name not in COMBINE_FUNCTIONS:
    raise ValueError(f"prompt combination {name!r}; expected one of "
                     f"{sorted(COMBINE_FUNCTIONS)}.")
  return COMBINE_FUNCTIONS[name]
