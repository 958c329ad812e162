"""T5 1.1 encoder-decoder, as T5X's minimal model wires it, with a prompt seam.

The encoder takes already-embedded inputs plus a mask, so a soft prompt is put
in front of the token embeddings (before the input dropout) without touching
the layers. An optional decoder prompt is put in front of the embedded decoder
inputs the same way; its positions get no logits. Parameter paths are T5X's
verbatim (see README, "Parameter tree").
"""
import dataclasses
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from prompt_tuning.models import layers
from prompt_tuning.prompts import prompt as prompt_lib

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyperparameters of a T5 encoder-decoder (T5X field names).

  `prompt_length > 0` adds a [prompt_length, emb_dim] soft prompt at
  `encoder/prompt/prompt`, joined to the input by `prompt_combine`
  ("prefix", "after_bos" or "suffix"). `decoder_prompt_length > 0` adds a
  [decoder_prompt_length, emb_dim] prompt at `decoder/prompt/prompt`, in front
  of the decoder inputs. Either may be 0 while the other is not.
  """
  vocab_size: int = 32128
  emb_dim: int = 512
  num_heads: int = 6
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  head_dim: int = 64
  mlp_dim: int = 1024
  mlp_activations: Sequence[str] = ("gelu", "linear")
  dropout_rate: float = 0.1
  logits_via_embedding: bool = False
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dtype: str = "float32"
  prompt_length: int = 0
  prompt_combine: str = "prefix"
  decoder_prompt_length: int = 0

  def __post_init__(self):
    # A tuple keeps the config hashable (it is a static jit argument).
    object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"T5Config.dtype={self.dtype!r}; expected float32 or bfloat16.")
    for name in ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim"):
      if getattr(self, name) <= 0:
        raise ValueError(f"T5Config.{name}={getattr(self, name)}; expected > 0.")
    if self.prompt_length < 0:
      raise ValueError(f"T5Config.prompt_length={self.prompt_length}; expected >= 0.")
    if self.decoder_prompt_length < 0:
      raise ValueError(f"T5Config.decoder_prompt_length={self.decoder_prompt_length}; "
                       "expected >= 0.")
    prompt_lib.get_combine_fn(self.prompt_combine)  # validates the name

  @property
  def activation_dtype(self):
    return jnp.dtype(self.dtype)

  def replace(self, **changes) -> "T5Config":
    return dataclasses.replace(self, **changes)


def _dropout(cfg: T5Config) -> nn.Dropout:
  # T5X broadcasts dropout masks over the length axis.
  return nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))


def _attention(cfg: T5Config, name: str) -> layers.MultiHeadAttention:
  return layers.MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate,
                                   cfg.activation_dtype, name=name)


def _relpos(cfg: T5Config) -> layers.RelativePositionBiases:
  return layers.RelativePositionBiases(cfg.relative_attention_num_buckets,
                                       cfg.relative_attention_max_distance,
                                       cfg.num_heads, cfg.activation_dtype,
                                       name="relpos_bias")


class EncoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x: Array, bias: Array, deterministic: bool) -> Array:
    """[B, L, D] with [B, N, L, L] bias -> [B, L, D]."""
    cfg, dt = self.config, self.config.activation_dtype
    y = layers.RMSNorm(dtype=dt, name="pre_attention_layer_norm")(x)
    y = _attention(cfg, "attention")(y, y, bias, deterministic=deterministic)
    x = x + _dropout(cfg)(y, deterministic=deterministic)
    y = layers.RMSNorm(dtype=dt, name="pre_mlp_layer_norm")(x)
    y = layers.MlpBlock(cfg.mlp_dim, cfg.mlp_activations, cfg.dropout_rate, dt,
                        name="mlp")(y, deterministic=deterministic)
    x = x + _dropout(cfg)(y, deterministic=deterministic)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class Encoder(nn.Module):
  """Prompt (optional) -> input dropout -> layers -> final norm."""
  config: T5Config

  @nn.compact
  def __call__(self, embedded: Array, mask: Array,
               deterministic: bool = True) -> tuple[Array, Array]:
    """Encodes already-embedded inputs.

    Args:
      embedded: [B, L, D] input embeddings.
      mask: [B, L] 1 for real tokens, 0 for padding.
      deterministic: disables dropout.

    Returns:
      [B, P + L, D] encodings and their [B, P + L] mask (P = 0 without prompt).
    """
    cfg = self.config
    if cfg.prompt_length:
      prompt = prompt_lib.Prompt(cfg.prompt_length, name="prompt")(cfg.emb_dim)
      embedded, mask = prompt_lib.get_combine_fn(cfg.prompt_combine)(
          prompt, embedded, mask)
    x = _dropout(cfg)(embedded.astype(cfg.activation_dtype), deterministic=deterministic)
    length = x.shape[1]
    # [1, N, L, L] relative bias + [B, 1, L, L] padding mask, built once per stack.
    bias = (_relpos(cfg)(length, length, bidirectional=True)
            + layers.mask_to_bias(layers.attention_mask(mask, mask), cfg.activation_dtype))
    for i in range(cfg.num_encoder_layers):
      x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic)
    x = layers.RMSNorm(dtype=cfg.activation_dtype, name="encoder_norm")(x)
    return _dropout(cfg)(x, deterministic=deterministic), mask


class DecoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, y: Array, encoded: Array, self_bias: Array, cross_bias: Array,
               deterministic: bool, decode: bool) -> Array:
    """[B, T, D] decoder states, [B, S, D] encodings -> [B, T, D]."""
    cfg, dt = self.config, self.config.activation_dtype
    z = layers.RMSNorm(dtype=dt, name="pre_self_attention_layer_norm")(y)
    z = _attention(cfg, "self_attention")(z, z, self_bias, deterministic=deterministic,
                                          decode=decode)
    y = y + _dropout(cfg)(z, deterministic=deterministic)
    z = layers.RMSNorm(dtype=dt, name="pre_cross_attention_layer_norm")(y)
    z = _attention(cfg, "encoder_decoder_attention")(z, encoded, cross_bias,
                                                     deterministic=deterministic)
    y = y + _dropout(cfg)(z, deterministic=deterministic)
    z = layers.RMSNorm(dtype=dt, name="pre_mlp_layer_norm")(y)
    z = layers.MlpBlock(cfg.mlp_dim, cfg.mlp_activations, cfg.dropout_rate, dt,
                        name="mlp")(z, deterministic=deterministic)
    y = y + _dropout(cfg)(z, deterministic=deterministic)
    return nn.with_logical_constraint(y, ("batch", "length", "embed"))


class Decoder(nn.Module):
  """Causal decoder with cross-attention; logits untied (1.1) or tied (1.0).

  With `decoder_prompt_length` P > 0 the [P, D] prompt is put in front of the
  embedded decoder inputs (before the input dropout). Every position attends
  causally, so each token sees all P prompt positions and the prompt rows see
  only earlier prompt rows; relative positions count the prompt. The prompt
  positions' outputs are dropped before the final norm: logits stay [B, T, V].
  In decode mode the prompt is written into the cache once (`prefill=True`)
  and each later step processes one token at cache index P + t.
  """
  config: T5Config
  shared_embedding: nn.Module

  @nn.compact
  def __call__(self, encoded: Array, encoder_mask: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array] = None, deterministic: bool = True,
               decode: bool = False, max_decode_length: Optional[int] = None,
               prefill: bool = False) -> Array:
    """Runs the decoder.

    Args:
      encoded: [B, S, D] encoder output.
      encoder_mask: [B, S] 1 for real encoder positions (prompt included).
      decoder_input_tokens: [B, T] shifted-right targets (0 = start / padding).
        [B, 0] with `prefill`.
      decoder_target_tokens: [B, T] targets; 0 marks padding. Defaults to all real.
      deterministic: disables dropout.
      decode: one step of incremental decoding (T = 1) with the KV cache.
      max_decode_length: T_max, the tokens the cache holds after the decoder
        prompt (decode mode only; the cache has P + T_max positions).
      prefill: decode mode only: write the decoder prompt's P positions into
        the (empty) cache; `decoder_input_tokens` must be [B, 0].

    Returns:
      [B, T, V] float32 logits (none for the decoder prompt positions).
    """
    cfg, dt = self.config, self.config.activation_dtype
    length = decoder_input_tokens.shape[1]
    if prefill and not (decode and length == 0 and max_decode_length):
      raise ValueError(f"prefill needs decode=True, max_decode_length and [B, 0] decoder "
                       f"inputs; got decode={decode}, max_decode_length={max_decode_length}, "
                       f"decoder_input_tokens of shape {decoder_input_tokens.shape}.")
    if decoder_target_tokens is None:
      decoder_target_tokens = jnp.ones_like(decoder_input_tokens)
    y = self.shared_embedding(decoder_input_tokens).astype(dt)
    query_mask = jnp.ones_like(decoder_input_tokens) if decode else decoder_target_tokens > 0
    # Decode steps after the prefill find the prompt in the cache.
    num_prompt = cfg.decoder_prompt_length if (prefill or not decode) else 0
    if num_prompt:
      prompt = prompt_lib.Prompt(num_prompt, name="prompt")(cfg.emb_dim)
      # [B, T, D] -> [B, P + T, D]; prompt positions are never masked.
      y, query_mask = prompt_lib.combine_prefix(prompt, y, query_mask)
    y = _dropout(cfg)(y, deterministic=deterministic)
    relpos = _relpos(cfg)
    if decode:
      # The attention slices this [1, N, P + T_max, P + T_max] bias at the cache index.
      max_len = cfg.decoder_prompt_length + (max_decode_length or length)
      self_bias = relpos(max_len, max_len, bidirectional=False)
    else:
      total = y.shape[1]  # P + T
      self_mask = layers.attention_mask(query_mask, query_mask) & layers.causal_mask(total)
      self_bias = (relpos(total, total, bidirectional=False)
                   + layers.mask_to_bias(self_mask, dt))
    cross_bias = layers.mask_to_bias(layers.attention_mask(query_mask, encoder_mask), dt)
    for i in range(cfg.num_decoder_layers):
      y = DecoderLayer(cfg, name=f"layers_{i}")(y, encoded, self_bias, cross_bias,
                                               deterministic, decode)
    if num_prompt:
      y = y[:, num_prompt:]  # [B, P + T, D] -> [B, T, D]: no logits for the prompt
    y = layers.RMSNorm(dtype=dt, name="decoder_norm")(y)
    y = _dropout(cfg)(y, deterministic=deterministic)
    if cfg.logits_via_embedding:
      # T5 1.0: tied output layer, rescaled by 1/sqrt(d_model) as Mesh TF did.
      logits = self.shared_embedding.attend(y) / jnp.sqrt(y.shape[-1]).astype(dt)
    else:
      logits = layers.dense(cfg.vocab_size, ("embed", "vocab"), "logits_dense", dt,
                            nn.initializers.variance_scaling(1.0, "fan_in",
                                                             "truncated_normal"))(y)
    logits = nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
    return logits.astype(jnp.float32)


class Transformer(nn.Module):
  """The encoder-decoder. `__call__` gives teacher-forced [B, T, V] logits."""
  config: T5Config

  def setup(self):
    cfg = self.config
    self.token_embedder = nn.Embed(
        cfg.vocab_size, cfg.emb_dim, dtype=cfg.activation_dtype,
        param_dtype=jnp.float32,
        embedding_init=layers.param_with_axes(nn.initializers.normal(1.0),
                                              ("vocab", "embed")))
    self.encoder = Encoder(cfg)
    self.decoder = Decoder(cfg, shared_embedding=self.token_embedder)

  def embed(self, tokens: Array) -> Array:
    """[B, L] int ids -> [B, L, D] embeddings."""
    return self.token_embedder(tokens)

  def encode(self, encoder_input_tokens: Array,
             enable_dropout: bool = False) -> tuple[Array, Array]:
    """[B, L] ids (0 = padding) -> ([B, P + L, D] encodings, [B, P + L] mask)."""
    mask = (encoder_input_tokens > 0).astype(jnp.int32)
    return self.encoder(self.embed(encoder_input_tokens), mask,
                        deterministic=not enable_dropout)

  def encode_embedded(self, embedded: Array, mask: Array,
                      enable_dropout: bool = False) -> tuple[Array, Array]:
    """[B, L, D] embeddings + [B, L] mask -> encodings and mask, prompt included."""
    return self.encoder(embedded, mask, deterministic=not enable_dropout)

  def decode(self, encoded: Array, encoder_mask: Array, decoder_input_tokens: Array,
             decoder_target_tokens: Optional[Array] = None, enable_dropout: bool = False,
             decode: bool = False, max_decode_length: Optional[int] = None) -> Array:
    """See `Decoder.__call__`; returns [B, T, V] float32 logits."""
    return self.decoder(encoded, encoder_mask, decoder_input_tokens,
                        decoder_target_tokens, deterministic=not enable_dropout,
                        decode=decode, max_decode_length=max_decode_length)

  def prefill_decoder_prompt(self, encoded: Array, encoder_mask: Array,
                             max_decode_length: int) -> Array:
    """Decode mode: writes the decoder prompt into an empty cache (index 0 -> P).

    Run once before the first decode step when `decoder_prompt_length` > 0.

    Args:
      encoded: [B, S, D] encodings; encoder_mask: [B, S].
      max_decode_length: T_max, as given to `init_cache`.

    Returns:
      [B, 0, V] logits (the prompt positions have none); the cache is the point.
    """
    tokens = jnp.zeros((encoded.shape[0], 0), jnp.int32)
    return self.decoder(encoded, encoder_mask, tokens, decode=True,
                        max_decode_length=max_decode_length, prefill=True)

  def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array] = None,
               enable_dropout: bool = False) -> Array:
    """[B, L] inputs, [B, T] decoder inputs/targets -> [B, T, V] float32 logits."""
    encoded, mask = self.encode(encoder_input_tokens, enable_dropout)
    return self.decode(encoded, mask, decoder_input_tokens, decoder_target_tokens,
                       enable_dropout)


def init_params(config: T5Config, rng: Array, batch: int = 1, input_length: int = 4,
                target_length: int = 4) -> dict:
  """Random params (plain nested dict of float32 arrays) for `config`."""
  model = Transformer(config)
  tokens = jnp.ones((batch, input_length), jnp.int32)
  targets = jnp.ones((batch, target_length), jnp.int32)
  variables = jax.jit(model.init)(rng, tokens, targets, targets)
  return nn.unbox(variables["params"])


def param_axes(config: T5Config) -> dict:
  """Logical axis names of every param, as a tree of `jax.sharding.PartitionSpec`."""
  model = Transformer(config)
  tokens = jnp.ones((1, 4), jnp.int32)
  abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens, tokens, tokens)
  return nn.get_partition_spec(abstract)["params"]


def init_cache(config: T5Config, batch: int, max_decode_length: int,
               encoded_length: int = 1) -> dict:
  """Zeroed decoder key/value cache for `max_decode_length` steps.

  With a decoder prompt the cache also holds its P positions (in front); fill
  them with `Transformer.prefill_decoder_prompt` before the first step.

  Returns:
    The "cache" collection: per self-attention layer cached_key/cached_value
    [B, P + T_max, N, K] (P = decoder_prompt_length) and cache_index.
  """
  model = Transformer(config)
  encoded = jnp.zeros((batch, encoded_length, config.emb_dim), config.activation_dtype)
  mask = jnp.ones((batch, encoded_length), jnp.int32)
  # The cache takes the shape of the first decode-mode call's keys: P + T_max.
  tokens = jnp.zeros((batch, config.decoder_prompt_length + max_decode_length), jnp.int32)
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), encoded, mask, tokens, decode=True,
                         max_decode_length=max_decode_length, method=Transformer.decode))
  return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["cache"])
