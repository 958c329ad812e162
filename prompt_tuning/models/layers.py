"""T5 1.1 building blocks: RMS norm, attention, gated MLP, relative bias, masks.

Module and parameter names are T5X's, so a T5X checkpoint's tree maps 1:1.
Dimension letters: B batch, L/S key length, T query length, D d_model,
N heads, K head dim, F mlp dim, V vocab, R relative-position buckets.
"""
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning.models import adapter_layers, adapters as adapters_lib

Array = jax.Array
Initializer = Callable[..., Array]

# Added to masked-out attention logits; large enough that softmax gives 0, small
# enough that a fully masked row (a padded query) stays finite.
NEG_INF = -1e10


def param_with_axes(init: Initializer, axes: Sequence[str]) -> Initializer:
  """Wraps an initializer so the param carries T5X logical axis names."""
  return nn.with_logical_partitioning(init, tuple(axes))


def dense(features: int, axes: Sequence[str], name: str, dtype,
          init: Optional[Initializer] = None,
          lora: Optional[adapters_lib.LoraSpec] = None) -> nn.Dense:
  """A bias-free dense layer with a 2-D kernel [in, out], as T5X stores it.

  With `lora` it also holds LoRA's `lora_a` / `lora_b` (adapter_layers.LoraDense).
  """
  init = init or nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
  kwargs = dict(use_bias=False, dtype=dtype, param_dtype=jnp.float32,
                kernel_init=param_with_axes(init, axes), name=name)
  if lora is not None:
    return adapter_layers.LoraDense(features, lora=lora, axes=tuple(axes), **kwargs)
  return nn.Dense(features, **kwargs)


class RMSNorm(nn.Module):
  """T5 layer norm: scale only, no mean, no bias; statistics in float32."""
  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """[..., D] -> [..., D]."""
    scale = self.param("scale", param_with_axes(nn.initializers.ones, ("embed",)),
                       (x.shape[-1],), jnp.float32)
    x32 = jnp.asarray(x, jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(var + self.epsilon)
    return (y * jnp.asarray(scale, jnp.float32)).astype(self.dtype)


def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> np.ndarray:
  """Maps key-minus-query offsets to T5's log-spaced buckets.

  Half the buckets are exact offsets, the rest grow logarithmically up to
  `max_distance`; a bidirectional stack spends half its buckets on each side.

  Args:
    relative_position: [T, S] int, key position minus query position.

  Returns:
    [T, S] int32 bucket ids in [0, num_buckets).
  """
  ret = np.zeros_like(relative_position)
  n = -relative_position
  if bidirectional:
    num_buckets //= 2
    ret += (n < 0).astype(np.int32) * num_buckets
    n = np.abs(n)
  else:
    n = np.maximum(n, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  # float32 and truncation as the reference implementations compute it.
  with np.errstate(divide="ignore"):
    scaled = (np.log(n.astype(np.float32) / np.float32(max_exact))
              / np.float32(np.log(max_distance / max_exact))
              * np.float32(num_buckets - max_exact))
  large = max_exact + np.where(is_small, 0, scaled).astype(np.int32)
  large = np.minimum(large, num_buckets - 1)
  return (ret + np.where(is_small, n, large)).astype(np.int32)


class RelativePositionBiases(nn.Module):
  """One learned scalar per (head, bucket), shared by every layer of a stack."""
  num_buckets: int
  max_distance: int
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, qlen: int, klen: int, bidirectional: bool) -> Array:
    """Returns the [1, N, T, S] attention bias for static lengths T, S."""
    context = np.arange(qlen, dtype=np.int32)[:, None]
    memory = np.arange(klen, dtype=np.int32)[None, :]
    buckets = relative_position_bucket(memory - context, bidirectional,
                                       self.num_buckets, self.max_distance)
    table = self.param(
        "rel_embedding",
        param_with_axes(nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
                        ("heads", "relpos_buckets")),
        (self.num_heads, self.num_buckets), jnp.float32)
    # [N, R] gathered at [T, S] -> [N, T, S]
    values = jnp.take(jnp.asarray(table, self.dtype), jnp.asarray(buckets), axis=1)
    return values[None]


def attention_mask(query_mask: Array, key_mask: Array) -> Array:
  """[B, T] x [B, S] (1 = real token) -> [B, 1, T, S] bool, True = may attend."""
  return (query_mask[:, None, :, None] > 0) & (key_mask[:, None, None, :] > 0)


def causal_mask(length: int) -> Array:
  """[1, 1, T, T] bool lower-triangular: query t sees keys 0..t."""
  return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


def mask_to_bias(mask: Array, dtype) -> Array:
  """Bool mask -> additive bias: 0 where allowed, NEG_INF where not."""
  return jnp.where(mask, 0.0, NEG_INF).astype(dtype)


def query_groups(query_rows: int, kv_rows: int,
                 names: Sequence[str] = ("inputs_q", "inputs_kv")) -> int:
  """C, the query rows that share one key/value row: B * C queries, B keys/values.

  Row b * C + c of the queries attends to row b of the keys and values (rank
  classification: option c of example b reads example b's encodings). C = 1 is
  ordinary attention.

  Raises:
    ValueError: `kv_rows` does not divide `query_rows`.
  """
  if kv_rows < 1 or query_rows % kv_rows:
    raise ValueError(f"{names[0]} has {query_rows} rows and {names[1]} has {kv_rows}; "
                     f"expected a multiple of {kv_rows} (C consecutive rows per "
                     f"{names[1]} row, row b * C + c reads row b).")
  return query_rows // kv_rows


def _lora_of(spec: Optional[adapters_lib.AdapterSpec]):
  """projection name -> its LoraSpec or None."""
  return spec.lora_for if spec is not None else lambda name: None


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention without the 1/sqrt(K) logit scaling.

  T5 folds that scaling into the query initialization, so pretrained weights
  expect unscaled logits. With `decode=True` keys and values are cached
  ([B, T_max, N, K] in the "cache" collection) and T query positions are
  processed at the cache index: T = 1 per generated token, T = P to prefill a
  decoder prompt.

  Grouped queries: [B * C, T, D] queries may attend to [B, S, D] keys/values,
  row b * C + c to row b (see `query_groups`). The key and value projections
  then run on the B rows only and the C query rows of a group share them, with
  no repeated [B * C, S, N, K] copy; the result equals attention on the
  repeated keys/values (up to float rounding). Rank classification uses it to project each example's
  cross-attention keys/values once for all its C options.

  `adapters` (None: none) adds LoRA to the targeted projections, IA3's
  `ia3_key` / `ia3_value` scaling of the projected keys and values, and a
  prefix: P extra keys/values every query attends to (`adapter_layers.join_prefix`),
  the folded `prefix_key` / `prefix_value` params or, while reparameterised,
  the arrays passed as `prefix`.
  """
  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32
  adapters: Optional[adapters_lib.AdapterSpec] = None

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Array, bias: Optional[Array],
               *, deterministic: bool, decode: bool = False,
               prefix: Optional[tuple[Array, Array]] = None) -> Array:
    """Attends [B, T, D] queries to [B, S, D] keys/values.

    Args:
      inputs_q: [B, T, D] queries, or [B * C, T, D] in C-row groups.
      inputs_kv: [B, S, D] keys and values.
      bias: [B or 1, N or 1, T, S] additive bias (mask and relative positions);
        [B * C or 1, N or 1, T, S] with grouped queries.
        In decode mode the full [.., T_max, T_max] bias; the T rows from the
        cache index on are sliced here and future keys are masked.
      deterministic: disables dropout.
      decode: incremental decoding with the key/value cache: the T positions
        are written at the cache index and each attends to the keys up to its own.
      prefix: ([P, N * K], [P, N * K]) prefix keys and values from the prefix
        reparameterisation (only with a reparameterised prefix spec).

    Returns:
      [B, T, D] attention output ([B * C, T, D] with grouped queries).
    """
    groups = query_groups(inputs_q.shape[0], inputs_kv.shape[0])
    if groups > 1 and decode:
      raise ValueError(f"decode=True with {inputs_q.shape[0]} query rows and "
                       f"{inputs_kv.shape[0]} key/value rows; expected the same batch "
                       "(the cache is per row; grouping is for cross-attention).")
    nk = self.num_heads * self.head_dim
    spec = self.adapters
    lora = _lora_of(spec)
    query_init = nn.initializers.variance_scaling(
        1.0 / self.head_dim, "fan_in", "truncated_normal")  # folded 1/sqrt(K)
    q = dense(nk, ("embed", "joined_kv"), "query", self.dtype, query_init,
              lora("query"))(inputs_q)
    k = dense(nk, ("embed", "joined_kv"), "key", self.dtype, lora=lora("key"))(inputs_kv)
    v = dense(nk, ("embed", "joined_kv"), "value", self.dtype, lora=lora("value"))(inputs_kv)
    if spec is not None and spec.ia3:
      # IA3: l_k * K and l_v * V ([B, S, N * K] * [N * K]), ones at init.
      k = k * adapter_layers.ia3_vector(self, "ia3_key", nk, "joined_kv", k.dtype)
      v = v * adapter_layers.ia3_vector(self, "ia3_value", nk, "joined_kv", v.dtype)
    if spec is not None and spec.prefix is not None:
      if not spec.prefix.reparameterize:
        prefix = adapter_layers.prefix_params(self, spec.prefix.length, nk)
      elif prefix is None:
        raise ValueError("a reparameterised PrefixSpec needs the layer's prefix keys/values "
                         "(prefix=...) from its stack's PrefixMLP; got none.")
    elif prefix is not None:
      raise ValueError("MultiHeadAttention got prefix keys/values but its adapters have no "
                       "PrefixSpec; expected AdapterSpec(prefix=PrefixSpec(...)).")
    split = lambda x: x.reshape(x.shape[:2] + (self.num_heads, self.head_dim))
    q, k, v = split(q), split(k), split(v)  # [B, T|S, N, K]
    q = nn.with_logical_constraint(q, ("batch", "length", "heads", "kv"))

    if decode:
      initialized = self.has_variable("cache", "cached_key")
      cached_key = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
      cached_value = self.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
      cache_index = self.variable("cache", "cache_index",
                                  lambda: jnp.array(0, dtype=jnp.int32))
      if initialized:
        batch, max_length = cached_key.value.shape[:2]
        steps = q.shape[1]
        if bias is not None and bias.shape[-1] != max_length:
          raise ValueError(
              f"decode-mode bias covers {bias.shape[-1]} key positions but the cache holds "
              f"{max_length} (decoder prompt + max_decode_length); pass Transformer.decode "
              "the max_decode_length the cache was made for.")
        if not 1 <= steps <= max_length:
          raise ValueError(f"decode step got {steps} query positions; expected 1 to the "
                           f"cache length {max_length}.")
        index = cache_index.value
        k = jax.lax.dynamic_update_slice(cached_key.value, k, (0, index, 0, 0))
        v = jax.lax.dynamic_update_slice(cached_value.value, v, (0, index, 0, 0))
        cached_key.value, cached_value.value = k, v
        cache_index.value = index + steps
        # Query t (at index + t) sees keys 0..index + t only: [1, 1, T, T_max].
        step_mask = (jnp.arange(max_length)[None, :]
                     <= index + jnp.arange(steps)[:, None])[None, None]
        step_bias = mask_to_bias(step_mask, jnp.float32)
        if bias is not None:
          bias = jax.lax.dynamic_slice_in_dim(bias, index, steps, axis=-2)
          bias = bias + step_bias
        else:
          bias = step_bias

    if prefix is not None:
      # [B, S, N, K] -> [B, P + S, N, K]; the bias gets P zero columns in front.
      k, v, bias = adapter_layers.join_prefix(k, v, bias, prefix)

    if groups == 1:
      # [B, T, N, K] x [B, S, N, K] -> [B, N, T, S]; logits in float32.
      logits = jnp.einsum("btnk,bsnk->bnts", q, k, preferred_element_type=jnp.float32)
    else:
      # [B * C, T, N, K] -> [B, C, T, N, K] x [B, S, N, K] -> [B, C, N, T, S]
      # -> [B * C, N, T, S]: the C rows of a group read the same keys.
      grouped = q.reshape((-1, groups) + q.shape[1:])
      logits = jnp.einsum("bctnk,bsnk->bcnts", grouped, k,
                          preferred_element_type=jnp.float32)
      logits = logits.reshape((-1,) + logits.shape[2:])
    if bias is not None:
      logits = logits + jnp.asarray(bias, jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    # T5X drops whole attention maps broadcast over batch and heads.
    weights = nn.Dropout(self.dropout_rate, broadcast_dims=(0, 1))(
        weights, deterministic=deterministic)
    if groups == 1:
      out = jnp.einsum("bnts,bsnk->btnk", weights, v)  # [B, T, N, K]
    else:
      # [B * C, N, T, S] -> [B, C, N, T, S] x [B, S, N, K] -> [B * C, T, N, K]
      grouped = weights.reshape((-1, groups) + weights.shape[1:])
      out = jnp.einsum("bcnts,bsnk->bctnk", grouped, v)
      out = out.reshape((-1,) + out.shape[2:])
    out = out.reshape(out.shape[:2] + (nk,))
    return dense(inputs_q.shape[-1], ("joined_kv", "embed"), "out", self.dtype,
                 lora=lora("out"))(out)


_ACTIVATIONS = {
    "gelu": lambda x: nn.gelu(x, approximate=True),  # HF's "gelu_new"
    "relu": nn.relu,
    "linear": lambda x: x,
    "silu": nn.silu,
}


class MlpBlock(nn.Module):
  """Position-wise MLP; ("gelu", "linear") is T5 1.1's gated GELU.

  One activation -> a single `wi`; several -> `wi_0`, `wi_1`, ... multiplied.
  `adapters` adds LoRA to the targeted projections and IA3's `ia3_hidden`
  scaling of the [B, L, F] inner activation (the input of `wo`).
  """
  intermediate_dim: int
  activations: Sequence[str] = ("gelu", "linear")
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32
  adapters: Optional[adapters_lib.AdapterSpec] = None

  @nn.compact
  def __call__(self, x: Array, *, deterministic: bool) -> Array:
    """[B, L, D] -> [B, L, D]."""
    for act in self.activations:
      if act not in _ACTIVATIONS:
        raise ValueError(f"mlp activation {act!r}; expected one of {sorted(_ACTIVATIONS)}.")
    spec = self.adapters
    lora = _lora_of(spec)
    hidden = None
    for i, act in enumerate(self.activations):
      name = "wi" if len(self.activations) == 1 else f"wi_{i}"
      h = _ACTIVATIONS[act](dense(self.intermediate_dim, ("embed", "mlp"), name,
                                  self.dtype, lora=lora(name))(x))
      hidden = h if hidden is None else hidden * h
    hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
    hidden = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(
        hidden, deterministic=deterministic)
    if spec is not None and spec.ia3:
      # IA3: l_ff * hidden, the input of wo ([B, L, F] * [F]), ones at init.
      hidden = hidden * adapter_layers.ia3_vector(self, "ia3_hidden", self.intermediate_dim,
                                                  "mlp", hidden.dtype)
    return dense(x.shape[-1], ("mlp", "embed"), "wo", self.dtype, lora=lora("wo"))(hidden)
