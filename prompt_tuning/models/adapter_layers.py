"""The methods' pieces inside the model: LoRA dense, IA3 vectors, prefixes, layer prompts.

See `prompt_tuning.models.adapters` for the specs and the param paths. Each
piece is written so that without its spec nothing is created and nothing is
computed, and at its init (LoRA's B = 0, IA3's ones) it returns exactly what
the frozen layer returns.

Dimension letters: B batch, T query length, S key length, P prefix / prompt
length, L layers of a stack, D d_model, N heads, K head dim, H the prefix MLP width.
"""
from typing import Optional

import flax.linen as nn
from flax.linen import dtypes
import jax
import jax.numpy as jnp

from prompt_tuning.models import adapters as adapters_lib
from prompt_tuning.models.config import T5Config
from prompt_tuning.prompts import prompt as prompt_lib
from prompt_tuning.prompts.spec import PromptSpec

Array = jax.Array


def _param(module: nn.Module, name: str, init, shape: tuple, axes: tuple) -> Array:
  """A float32 param carrying logical axis names."""
  return module.param(name, nn.with_logical_partitioning(init, axes), shape, jnp.float32)


class LoraDense(nn.Dense):
  """`nn.Dense` (the frozen kernel, computed exactly as there) plus a LoRA update.

  y = x W + (alpha / r) (x A) B, with A [d_in, r] and B [r, d_out]; B = 0 at init.

  Attributes:
    lora: the LoRA spec (rank, alpha).
    axes: the kernel's logical axes (in, out); A gets (in, "lora_rank"), B ("lora_rank", out).
  """
  lora: Optional[adapters_lib.LoraSpec] = None
  axes: tuple = ("embed", "joined_kv")

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """[..., d_in] -> [..., d_out]."""
    y = super().__call__(inputs)
    d_in, rank = inputs.shape[-1], self.lora.rank
    # PEFT's kaiming_uniform(a=sqrt(5)) on its [r, d_in] lora_A is U[-1/sqrt(d_in), ...].
    a = _param(self, "lora_a", prompt_lib.uniform_symmetric(d_in ** -0.5), (d_in, rank),
               (self.axes[0], adapters_lib.LORA_RANK_AXIS))
    b = _param(self, "lora_b", nn.initializers.zeros, (rank, self.features),
               (adapters_lib.LORA_RANK_AXIS, self.axes[1]))
    x, a, b = dtypes.promote_dtype(inputs, a, b, dtype=self.dtype)
    # [..., d_in] x [d_in, r] -> [..., r] x [r, d_out] -> [..., d_out]
    update = jnp.einsum("...r,ro->...o", jnp.einsum("...i,ir->...r", x, a), b)
    return y + jnp.asarray(self.lora.scale, update.dtype) * update


def ia3_vector(module: nn.Module, name: str, width: int, axis: str, dtype) -> Array:
  """IA3's learned [width] scaling vector (ones at init), in the activation dtype."""
  return _param(module, name, nn.initializers.ones, (width,), (axis,)).astype(dtype)


def join_prefix(key: Array, value: Array, bias: Optional[Array],
                prefix: tuple[Array, Array]) -> tuple[Array, Array, Optional[Array]]:
  """Puts the layer's P prefix keys and values in front of the attention's own.

  Args:
    key, value: [B, S, N, K] projected keys and values.
    bias: [B or 1, N or 1, T, S] additive bias (mask and relative positions), or None.
    prefix: ([P, N * K] keys, [P, N * K] values), shared by every example.

  Returns:
    [B, P + S, N, K] keys and values and the [.., T, P + S] bias: 0 on the
    prefix columns, i.e. no relative-position bias (the prefix has no position)
    and never masked (padding never hides it).
  """
  batch, _, heads, head_dim = key.shape

  def widen(p, like):
    p = p.reshape((p.shape[0], heads, head_dim)).astype(like.dtype)  # [P, N, K]
    return jnp.concatenate([jnp.broadcast_to(p[None], (batch,) + p.shape), like], axis=1)

  length = prefix[0].shape[0]
  if bias is not None:
    bias = jnp.pad(bias, [(0, 0)] * (bias.ndim - 1) + [(length, 0)])
  return widen(prefix[0], key), widen(prefix[1], value), bias


def prefix_params(module: nn.Module, length: int, width: int) -> tuple[Array, Array]:
  """The folded prefix of one attention layer: `prefix_key`, `prefix_value` [P, N * K]."""
  axes = (adapters_lib.PREFIX_AXIS, "joined_kv")
  init = nn.initializers.normal(1.0)
  return (_param(module, "prefix_key", init, (length, width), axes),
          _param(module, "prefix_value", init, (length, width), axes))


class PrefixMLP(nn.Module):
  """Li & Liang's reparameterisation for one attention block of a stack.

  A [P, D] embedding -> Dense(H) -> tanh -> Dense(L * 2 * N * K): every layer's
  prefix keys and values at once (output column (l * 2 + j) * N * K + c is
  layer l's key (j = 0) or value (j = 1) feature c). The dense layers have
  biases, as in Li & Liang and PEFT. Computed in float32.
  """
  spec: adapters_lib.PrefixSpec
  num_layers: int
  width: int  # N * K

  @nn.compact
  def __call__(self, d_model: int) -> tuple[Array, Array]:
    """Returns ([L, P, N * K] keys, [L, P, N * K] values)."""
    p, h, out = self.spec.length, self.spec.hidden_dim, self.num_layers * 2 * self.width
    embed_axis, hidden_axis = adapters_lib.PREFIX_EMBED_AXIS, adapters_lib.PREFIX_HIDDEN_AXIS
    out_axis = adapters_lib.PREFIX_OUT_AXIS
    embedding = _param(self, "embedding", nn.initializers.normal(1.0), (p, d_model),
                       (adapters_lib.PREFIX_AXIS, embed_axis))
    kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")

    def dense(features, axes, name):
      return nn.Dense(features, param_dtype=jnp.float32, name=name,
                      kernel_init=nn.with_logical_partitioning(kernel_init, axes),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                                             axes[1:]))

    hidden = jnp.tanh(dense(h, (embed_axis, hidden_axis), "wi")(embedding))  # [P, H]
    kv = dense(out, (hidden_axis, out_axis), "wo")(hidden)  # [P, L * 2 * N * K]
    kv = kv.reshape((p, self.num_layers, 2, self.width)).transpose(2, 1, 0, 3)
    return kv[0], kv[1]  # [L, P, N * K] each


class Prefixes(nn.Module):
  """One `PrefixMLP` per attention block of a stack (module `{stack}/prefix`)."""
  spec: adapters_lib.PrefixSpec
  blocks: tuple
  num_layers: int
  width: int

  @nn.compact
  def __call__(self, d_model: int) -> dict:
    """{block: ([L, P, N * K] keys, [L, P, N * K] values)}."""
    return {block: PrefixMLP(self.spec, self.num_layers, self.width, name=block)(d_model)
            for block in self.blocks}


class DeepPrompt(nn.Module):
  """The prompts of encoder layers 1 .. L - 1 (deep prompts; param `prompt`).

  [L - 1, P, D], or [K, L - 1, P, D] when the encoder prompt is a bank of K
  (each example's row picked by `prompt_ids`, as for the encoder prompt).
  U[-0.5, 0.5] at init, like a random prompt.
  """
  spec: PromptSpec  # the encoder prompt's
  num_layers: int

  @nn.compact
  def __call__(self, d_model: int, batch: int, prompt_ids: Optional[Array]) -> dict:
    """Per-layer inputs for all L layers (leading axis L).

    Returns:
      {"prompt": [L, B or 1, P, D] (row 0 unused), "use": [L] bool, False for
      layer 0, whose prompt is the encoder prompt already in place}.
    """
    deep, p = self.num_layers - 1, self.spec.length
    one = (adapters_lib.PROMPT_LAYERS_AXIS,) + self.spec.axes[-2:]
    shape, axes = (deep, p, d_model), one
    if self.spec.is_bank:
      shape, axes = (self.spec.num_prompts,) + shape, (self.spec.axes[0],) + one
    bank = _param(self, "prompt", prompt_lib.uniform_symmetric(0.5), shape, axes)
    if self.spec.is_bank:
      # [K, L - 1, P, D] -> [K, (L - 1) P, D] -> [B, (L - 1) P, D] -> [L - 1, B, P, D]
      rows = prompt_lib.select(bank.reshape(bank.shape[0], deep * p, d_model), prompt_ids,
                               batch)
      layers = rows.reshape((batch, deep, p, d_model)).transpose(1, 0, 2, 3)
    else:
      layers = bank[:, None]  # [L - 1, 1, P, D]
    prompts = jnp.concatenate([jnp.zeros_like(layers[:1]), layers], axis=0)
    use = jnp.arange(self.num_layers) > 0
    return {"prompt": prompts, "use": use}


def replace_prompt(x: Array, prompt: Array, use: Array) -> Array:
  """The reference's `replace_prompt`: the first P positions become the layer's prompt.

  Args:
    x: [B, P + L, D] the layer's input, the prompt in front.
    prompt: [B or 1, P, D] this layer's prompt.
    use: [] bool; False leaves `x` as it is (layer 0).

  Returns:
    [B, P + L, D].
  """
  length = prompt.shape[1]
  head = jnp.where(use, prompt.astype(x.dtype), x[:, :length])
  return jnp.concatenate([head, x[:, length:]], axis=1)


def stack_inputs(spec: Optional[adapters_lib.AdapterSpec], stack: str, config: T5Config,
                 batch: int, prompt: Optional[PromptSpec] = None,
                 prompt_ids: Optional[Array] = None) -> Optional[dict]:
  """What each layer of a stack gets from the stack: per-layer arrays, leading axis L.

  Called inside the stack's compact `__call__`, so the modules made here are
  the stack's children (`{stack}/prefix`, `encoder/deep_prompt`).

  Returns:
    None without such a method, else a dict with "prefix" ({attention block:
    ([L, P, N * K], [L, P, N * K])}, from a reparameterised prefix) and/or
    "deep_prompt" (see `DeepPrompt`; the encoder only).
  """
  if spec is None:
    return None
  num_layers = config.num_encoder_layers if stack == "encoder" else config.num_decoder_layers
  inputs = {}
  if spec.prefix is not None and spec.prefix.reparameterize:
    inputs["prefix"] = Prefixes(spec.prefix, adapters_lib.ATTENTION_BLOCKS[stack], num_layers,
                                config.num_heads * config.head_dim, name="prefix")(
                                    config.emb_dim)
  if spec.deep_prompts and stack == "encoder":
    inputs["deep_prompt"] = DeepPrompt(prompt, num_layers, name="deep_prompt")(
        config.emb_dim, batch, prompt_ids)
  return inputs or None


def layer_prefix(inputs: Optional[dict], block: str) -> Optional[tuple[Array, Array]]:
  """This layer's reparameterised prefix of `block`, or None."""
  return (inputs or {}).get("prefix", {}).get(block)
