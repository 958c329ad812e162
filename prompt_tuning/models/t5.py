"""T5 1.1 encoder-decoder, as T5X's minimal model wires it, with a prompt seam.

The encoder takes already-embedded inputs plus a mask, so a soft prompt is put
in front of the token embeddings (before the input dropout) without touching
the layers. An optional decoder prompt is put in front of the embedded decoder
inputs the same way; its positions get no logits. Each prompt is described by
a `PromptSpec` given to the `Transformer` beside its `T5Config`; a spec with
K > 1 prompts is a bank, and every call then takes `prompt_ids` [B] saying
which prompt each example uses (one id for both stacks). Parameter paths are
T5X's verbatim (see README, "Parameter tree").
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from prompt_tuning.models import adapter_layers, layers, scan
from prompt_tuning.models.adapters import AdapterSpec
from prompt_tuning.models.config import T5Config
from prompt_tuning.prompts import prompt as prompt_lib
from prompt_tuning.prompts.spec import DECODER, ENCODER, PromptSpec

Array = jax.Array
Params = Any


def _dropout(cfg: T5Config) -> nn.Dropout:
  # T5X broadcasts dropout masks over the length axis.
  return nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))


def _attention(cfg: T5Config, name: str,
               adapters: Optional[AdapterSpec] = None) -> layers.MultiHeadAttention:
  return layers.MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate,
                                   cfg.activation_dtype, adapters, name=name)


def _mlp(cfg: T5Config, adapters: Optional[AdapterSpec]) -> layers.MlpBlock:
  return layers.MlpBlock(cfg.mlp_dim, cfg.mlp_activations, cfg.dropout_rate,
                         cfg.activation_dtype, adapters, name="mlp")


def _relpos(cfg: T5Config) -> layers.RelativePositionBiases:
  return layers.RelativePositionBiases(cfg.relative_attention_num_buckets,
                                       cfg.relative_attention_max_distance,
                                       cfg.num_heads, cfg.activation_dtype,
                                       name="relpos_bias")


class EncoderLayer(nn.Module):
  """Self-attention and MLP, each pre-normed, dropped out and added back."""
  config: T5Config
  deterministic: bool = True
  scanned: bool = False  # return (x, None), the carry and output nn.scan expects
  adapters: Optional[AdapterSpec] = None

  @nn.compact
  def __call__(self, x: Array, bias: Array, layer_inputs: Optional[dict] = None):
    """[B, L, D] with [B, N, L, L] bias -> [B, L, D].

    `layer_inputs`: this layer's slice of `adapter_layers.stack_inputs` (or None).
    """
    cfg, dt, det = self.config, self.config.activation_dtype, self.deterministic
    if layer_inputs is not None and "deep_prompt" in layer_inputs:
      deep = layer_inputs["deep_prompt"]  # deep prompts: this layer's prompt goes in
      x = adapter_layers.replace_prompt(x, deep["prompt"], deep["use"])
    y = layers.RMSNorm(dtype=dt, name="pre_attention_layer_norm")(x)
    y = _attention(cfg, "attention", self.adapters)(
        y, y, bias, deterministic=det,
        prefix=adapter_layers.layer_prefix(layer_inputs, "attention"))
    x = x + _dropout(cfg)(y, deterministic=det)
    y = layers.RMSNorm(dtype=dt, name="pre_mlp_layer_norm")(x)
    y = _mlp(cfg, self.adapters)(y, deterministic=det)
    x = x + _dropout(cfg)(y, deterministic=det)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    return (x, None) if self.scanned else x


_REMAT_POLICIES = {
    "full": None,  # save nothing inside the layer
    "minimal": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "dots": jax.checkpoint_policies.checkpoint_dots,
}


def _layer_stack(layer_cls, num_layers: int, cfg: T5Config, x: Array, *shared: Array,
                 layer_inputs: Optional[dict] = None, **attrs) -> Array:
  """Applies `num_layers` layers of `layer_cls` to `x`; `shared` goes to every layer.

  Called inside a compact method, so the layers are children of the stack:
  `layers_0`, `layers_1`, ... or, with `cfg.scan_layers`, one scanned `layers`
  whose params are stacked on `scan.SCAN_AXIS` (and whose decode cache, if
  any, is stacked on axis 0). `cfg.remat_policy` wraps each layer in
  `nn.remat`. `layer_inputs` (arrays with a leading [num_layers] axis) gives
  layer i its row i (scanned over with `cfg.scan_layers`).
  """
  if cfg.remat_policy != "none":
    # Under scan the loop already keeps XLA from merging recomputations.
    layer_cls = nn.remat(layer_cls, prevent_cse=not cfg.scan_layers,
                         policy=_REMAT_POLICIES[cfg.remat_policy])
  per_layer = () if layer_inputs is None else (layer_inputs,)
  if not cfg.scan_layers:
    for i in range(num_layers):
      row = tuple(jax.tree.map(lambda a, i=i: a[i], p) for p in per_layer)
      x = layer_cls(cfg, name=f"layers_{i}", **attrs)(x, *shared, *row)
    return x
  if num_layers == 0:
    return x
  scanned = nn.scan(layer_cls, variable_axes={"params": scan.SCAN_AXIS, "cache": 0},
                    split_rngs={"params": True, "dropout": True},
                    in_axes=(nn.broadcast,) * len(shared) + (0,) * len(per_layer),
                    length=num_layers,
                    metadata_params={nn.PARTITION_NAME: scan.SCAN_AXIS_NAME})
  x, _ = scanned(cfg, name="layers", scanned=True, **attrs)(x, *shared, *per_layer)
  return x


class Encoder(nn.Module):
  """Prompt (optional) -> input dropout -> layers -> final norm.

  `adapters` (see `prompt_tuning.models.adapters`) reach every layer; deep
  prompts and a reparameterised prefix are made here and passed down per layer.
  """
  config: T5Config
  prompt: Optional[PromptSpec] = None
  adapters: Optional[AdapterSpec] = None

  @nn.compact
  def __call__(self, embedded: Array, mask: Array, deterministic: bool = True,
               prompt_ids: Optional[Array] = None) -> tuple[Array, Array]:
    """Encodes already-embedded inputs.

    Args:
      embedded: [B, L, D] input embeddings.
      mask: [B, L] 1 for real tokens, 0 for padding.
      deterministic: disables dropout.
      prompt_ids: [B] which prompt of the bank each example uses (None for a
        single prompt).

    Returns:
      [B, P + L, D] encodings and their [B, P + L] mask (P = 0 without prompt).
    """
    cfg = self.config
    if self.prompt is not None:
      prompt = prompt_lib.Prompt(self.prompt, name="prompt")(
          cfg.emb_dim, embedded.shape[0], prompt_ids)
      embedded, mask = prompt_lib.get_combine_fn(self.prompt.combine)(
          prompt, embedded, mask)
    x = _dropout(cfg)(embedded.astype(cfg.activation_dtype), deterministic=deterministic)
    length = x.shape[1]
    # [1, N, L, L] relative bias + [B, 1, L, L] padding mask, built once per stack.
    bias = (_relpos(cfg)(length, length, bidirectional=True)
            + layers.mask_to_bias(layers.attention_mask(mask, mask), cfg.activation_dtype))
    layer_inputs = adapter_layers.stack_inputs(self.adapters, "encoder", cfg, x.shape[0],
                                               self.prompt, prompt_ids)
    x = _layer_stack(EncoderLayer, cfg.num_encoder_layers, cfg, x, bias,
                     layer_inputs=layer_inputs, deterministic=deterministic,
                     adapters=self.adapters)
    x = layers.RMSNorm(dtype=cfg.activation_dtype, name="encoder_norm")(x)
    return _dropout(cfg)(x, deterministic=deterministic), mask


class DecoderLayer(nn.Module):
  """Causal self-attention, cross-attention and MLP, each pre-normed and added back."""
  config: T5Config
  deterministic: bool = True
  decode: bool = False
  scanned: bool = False  # return (y, None), the carry and output nn.scan expects
  adapters: Optional[AdapterSpec] = None

  @nn.compact
  def __call__(self, y: Array, encoded: Array, self_bias: Array, cross_bias: Array,
               layer_inputs: Optional[dict] = None):
    """[B, T, D] decoder states, [B, S, D] encodings -> [B, T, D].

    The encodings may be [B / C, S, D], shared by C consecutive rows (see
    `layers.query_groups`); `cross_bias` is then per row, [B, 1, T, S].
    `layer_inputs`: this layer's slice of `adapter_layers.stack_inputs` (or None).
    """
    cfg, dt, det = self.config, self.config.activation_dtype, self.deterministic
    prefix = lambda block: adapter_layers.layer_prefix(layer_inputs, block)
    z = layers.RMSNorm(dtype=dt, name="pre_self_attention_layer_norm")(y)
    z = _attention(cfg, "self_attention", self.adapters)(
        z, z, self_bias, deterministic=det, decode=self.decode,
        prefix=prefix("self_attention"))
    y = y + _dropout(cfg)(z, deterministic=det)
    z = layers.RMSNorm(dtype=dt, name="pre_cross_attention_layer_norm")(y)
    z = _attention(cfg, "encoder_decoder_attention", self.adapters)(
        z, encoded, cross_bias, deterministic=det,
        prefix=prefix("encoder_decoder_attention"))
    y = y + _dropout(cfg)(z, deterministic=det)
    z = layers.RMSNorm(dtype=dt, name="pre_mlp_layer_norm")(y)
    z = _mlp(cfg, self.adapters)(z, deterministic=det)
    y = y + _dropout(cfg)(z, deterministic=det)
    y = nn.with_logical_constraint(y, ("batch", "length", "embed"))
    return (y, None) if self.scanned else y


class Decoder(nn.Module):
  """Causal decoder with cross-attention; logits untied (1.1) or tied (1.0).

  With a decoder prompt (P positions) the [B, P, D] prompts are put in front of the
  embedded decoder inputs (before the input dropout). Every position attends
  causally, so each token sees all P prompt positions and the prompt rows see
  only earlier prompt rows; relative positions count the prompt. The prompt
  positions' outputs are dropped before the final norm: logits stay [B, T, V].
  In decode mode the prompt is written into the cache once (`prefill=True`)
  and each later step processes one token at cache index P + t.

  Shared encodings: with [B, S, D] encodings and [B * C, T] decoder inputs,
  row b * C + c reads example b's encodings (C options per example). Each
  layer's cross-attention then projects keys/values once per example, not
  once per row; the logits equal those of the encodings repeated C times.
  """
  config: T5Config
  shared_embedding: nn.Module
  prompt: Optional[PromptSpec] = None
  adapters: Optional[AdapterSpec] = None

  @nn.compact
  def __call__(self, encoded: Array, encoder_mask: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array] = None, deterministic: bool = True,
               decode: bool = False, max_decode_length: Optional[int] = None,
               prefill: bool = False, prompt_ids: Optional[Array] = None) -> Array:
    """Runs the decoder.

    Args:
      encoded: [B, S, D] encoder output, or [B / C, S, D] shared by groups of
        C consecutive decoder rows (see the class doc).
      encoder_mask: [B, S] (or [B / C, S]) 1 for real encoder positions
        (prompt included); one row per row of `encoded`.
      decoder_input_tokens: [B, T] shifted-right targets (0 = start / padding).
        [B, 0] with `prefill`.
      decoder_target_tokens: [B, T] targets; 0 marks padding. Defaults to all real.
      deterministic: disables dropout.
      decode: one step of incremental decoding (T = 1) with the KV cache.
      max_decode_length: T_max, the tokens the cache holds after the decoder
        prompt (decode mode only; the cache has P + T_max positions).
      prefill: decode mode only: write the decoder prompt's P positions into
        the (empty) cache; `decoder_input_tokens` must be [B, 0].
      prompt_ids: [B] which prompt of a decoder-prompt bank each decoder row
        uses (teacher forcing and prefill; decode steps find it in the cache).

    Returns:
      [B, T, V] float32 logits (none for the decoder prompt positions).
    """
    cfg, dt = self.config, self.config.activation_dtype
    length = decoder_input_tokens.shape[1]
    if prefill and not (decode and length == 0 and max_decode_length):
      raise ValueError(f"prefill needs decode=True, max_decode_length and [B, 0] decoder "
                       f"inputs; got decode={decode}, max_decode_length={max_decode_length}, "
                       f"decoder_input_tokens of shape {decoder_input_tokens.shape}.")
    groups = layers.query_groups(decoder_input_tokens.shape[0], encoded.shape[0],
                                 ("decoder_input_tokens", "encoded"))
    if groups > 1 and encoder_mask.shape[0] != encoded.shape[0]:
      raise ValueError(f"encoder_mask has shape {encoder_mask.shape}; expected one row per "
                       f"row of encoded {encoded.shape} when encodings are shared.")
    if decoder_target_tokens is None:
      decoder_target_tokens = jnp.ones_like(decoder_input_tokens)
    y = self.shared_embedding(decoder_input_tokens).astype(dt)
    query_mask = jnp.ones_like(decoder_input_tokens) if decode else decoder_target_tokens > 0
    # Decode steps after the prefill find the prompt in the cache.
    prompt_length = self.prompt.length if self.prompt is not None else 0
    num_prompt = prompt_length if (prefill or not decode) else 0
    if num_prompt:
      prompt = prompt_lib.Prompt(self.prompt, name="prompt")(
          cfg.emb_dim, y.shape[0], prompt_ids)
      # [B, T, D] -> [B, P + T, D]; prompt positions are never masked.
      y, query_mask = prompt_lib.combine_prefix(prompt, y, query_mask)
    y = _dropout(cfg)(y, deterministic=deterministic)
    relpos = _relpos(cfg)
    if decode:
      # The attention slices this [1, N, P + T_max, P + T_max] bias at the cache index.
      max_len = prompt_length + (max_decode_length or length)
      self_bias = relpos(max_len, max_len, bidirectional=False)
    else:
      total = y.shape[1]  # P + T
      self_mask = layers.attention_mask(query_mask, query_mask) & layers.causal_mask(total)
      self_bias = (relpos(total, total, bidirectional=False)
                   + layers.mask_to_bias(self_mask, dt))
    if groups > 1:
      # [B / C, S] -> [B, S]: the mask is small; the encodings stay [B / C, S, D].
      encoder_mask = jnp.repeat(encoder_mask, groups, axis=0)
    cross_bias = layers.mask_to_bias(layers.attention_mask(query_mask, encoder_mask), dt)
    layer_inputs = adapter_layers.stack_inputs(self.adapters, "decoder", cfg, y.shape[0])
    y = _layer_stack(DecoderLayer, cfg.num_decoder_layers, cfg, y, encoded, self_bias,
                     cross_bias, layer_inputs=layer_inputs, deterministic=deterministic,
                     decode=decode, adapters=self.adapters)
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
  """The encoder-decoder. `__call__` gives teacher-forced [B, T, V] logits.

  Attributes:
    config: the frozen architecture.
    encoder_prompt: the soft prompt joined to the encoder input (the paper's),
      or None.
    decoder_prompt: a prompt in front of the decoder input, or None.
      When both are banks they hold the same number of prompts K, and
      `prompt_ids[b]` picks example b's prompt in both.
    adapters: parameter-efficient methods (LoRA, IA3, prefix, deep prompts;
      `prompt_tuning.models.adapters.AdapterSpec`), or None: the model and its
      param tree are then exactly the prompt-only ones.
  """
  config: T5Config
  encoder_prompt: Optional[PromptSpec] = None
  decoder_prompt: Optional[PromptSpec] = None
  adapters: Optional[AdapterSpec] = None

  def __post_init__(self):
    for name, spec, stack in (("encoder_prompt", self.encoder_prompt, ENCODER),
                              ("decoder_prompt", self.decoder_prompt, DECODER)):
      if spec is not None and (not isinstance(spec, PromptSpec) or spec.stack != stack):
        raise ValueError(f"Transformer.{name}={spec!r}; expected a PromptSpec with "
                         f"stack={stack!r} or None.")
    banks = {s.num_prompts for s in (self.encoder_prompt, self.decoder_prompt) if s}
    if len(banks) > 1:
      raise ValueError(f"the encoder and decoder prompt banks hold {sorted(banks)} prompts; "
                       "expected the same K, since one prompt_ids [B] indexes both.")
    if self.adapters is not None:
      if not isinstance(self.adapters, AdapterSpec):
        raise ValueError(f"Transformer.adapters={self.adapters!r}; expected an AdapterSpec "
                         "or None.")
      self.adapters.check(self.config, self.encoder_prompt)
    super().__post_init__()

  @property
  def num_prompts(self) -> int:
    """K, the prompts per bank (1 without a bank or without any prompt)."""
    return max([s.num_prompts for s in self.prompt_specs] or [1])

  @property
  def prompt_specs(self) -> tuple:
    """The model's prompt specs, encoder first."""
    return tuple(s for s in (self.encoder_prompt, self.decoder_prompt) if s is not None)

  def setup(self):
    cfg = self.config
    self.token_embedder = nn.Embed(
        cfg.vocab_size, cfg.emb_dim, dtype=cfg.activation_dtype,
        param_dtype=jnp.float32,
        embedding_init=layers.param_with_axes(nn.initializers.normal(1.0),
                                              ("vocab", "embed")))
    self.encoder = Encoder(cfg, prompt=self.encoder_prompt, adapters=self.adapters)
    self.decoder = Decoder(cfg, shared_embedding=self.token_embedder,
                           prompt=self.decoder_prompt, adapters=self.adapters)

  def embed(self, tokens: Array) -> Array:
    """[B, L] int ids -> [B, L, D] embeddings."""
    return self.token_embedder(tokens)

  def encode(self, encoder_input_tokens: Array, enable_dropout: bool = False,
             prompt_ids: Optional[Array] = None) -> tuple[Array, Array]:
    """[B, L] ids (0 = padding) -> ([B, P + L, D] encodings, [B, P + L] mask).

    `prompt_ids` [B] picks each example's prompt from a bank (see class doc).
    """
    mask = (encoder_input_tokens > 0).astype(jnp.int32)
    return self.encoder(self.embed(encoder_input_tokens), mask,
                        deterministic=not enable_dropout, prompt_ids=prompt_ids)

  def encode_embedded(self, embedded: Array, mask: Array, enable_dropout: bool = False,
                      prompt_ids: Optional[Array] = None) -> tuple[Array, Array]:
    """[B, L, D] embeddings + [B, L] mask -> encodings and mask, prompt included."""
    return self.encoder(embedded, mask, deterministic=not enable_dropout,
                        prompt_ids=prompt_ids)

  def decode(self, encoded: Array, encoder_mask: Array, decoder_input_tokens: Array,
             decoder_target_tokens: Optional[Array] = None, enable_dropout: bool = False,
             decode: bool = False, max_decode_length: Optional[int] = None,
             prompt_ids: Optional[Array] = None) -> Array:
    """See `Decoder.__call__`; returns [B, T, V] float32 logits.

    `encoded` may hold [B / C, S, D] encodings shared by C consecutive rows.
    """
    return self.decoder(encoded, encoder_mask, decoder_input_tokens,
                        decoder_target_tokens, deterministic=not enable_dropout,
                        decode=decode, max_decode_length=max_decode_length,
                        prompt_ids=prompt_ids)

  def prefill_decoder_prompt(self, encoded: Array, encoder_mask: Array,
                             max_decode_length: int,
                             prompt_ids: Optional[Array] = None) -> Array:
    """Decode mode: writes the decoder prompt into an empty cache (index 0 -> P).

    Run once before the first decode step when there is a decoder prompt.

    Args:
      encoded: [B, S, D] encodings; encoder_mask: [B, S].
      max_decode_length: T_max, as given to `init_cache`.
      prompt_ids: [B] each example's prompt of a decoder-prompt bank.

    Returns:
      [B, 0, V] logits (the prompt positions have none); the cache is the point.
    """
    tokens = jnp.zeros((encoded.shape[0], 0), jnp.int32)
    return self.decoder(encoded, encoder_mask, tokens, decode=True,
                        max_decode_length=max_decode_length, prefill=True,
                        prompt_ids=prompt_ids)

  def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array] = None,
               enable_dropout: bool = False, prompt_ids: Optional[Array] = None) -> Array:
    """[B, L] inputs, [B, T] decoder inputs/targets -> [B, T, V] float32 logits.

    `prompt_ids` [B] picks each example's prompt from the bank(s).
    """
    encoded, mask = self.encode(encoder_input_tokens, enable_dropout, prompt_ids)
    return self.decode(encoded, mask, decoder_input_tokens, decoder_target_tokens,
                       enable_dropout, prompt_ids=prompt_ids)


def as_model(model_or_config: Any) -> Transformer:
  """A `Transformer`, or a `T5Config` made into one without prompts."""
  if isinstance(model_or_config, T5Config):
    return Transformer(model_or_config)
  if not isinstance(model_or_config, Transformer):
    raise TypeError(f"expected a Transformer or a T5Config; got "
                    f"{type(model_or_config).__name__}.")
  return model_or_config


def _init_args(model: Transformer, batch: int, input_length: int, target_length: int):
  tokens = jnp.ones((batch, input_length), jnp.int32)
  targets = jnp.ones((batch, target_length), jnp.int32)
  ids = jnp.zeros((batch,), jnp.int32) if model.num_prompts > 1 else None
  return tokens, targets, ids


def init_params(model: Any, rng: Array, batch: int = 1, input_length: int = 4,
                target_length: int = 4) -> dict:
  """Random params (plain nested dict of float32 arrays).

  Args:
    model: a `Transformer` (its prompts included) or a `T5Config` (no prompt).
    rng: PRNG key.
  """
  model = as_model(model)
  tokens, targets, ids = _init_args(model, batch, input_length, target_length)
  variables = jax.jit(lambda r: model.init(r, tokens, targets, targets, prompt_ids=ids))(rng)
  return nn.unbox(variables["params"])


def param_axes(model: Any) -> dict:
  """Logical axis names of every param, as a tree of `jax.sharding.PartitionSpec`."""
  model = as_model(model)
  tokens, targets, ids = _init_args(model, 1, 4, 4)
  abstract = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), tokens, targets, targets, prompt_ids=ids))
  return nn.get_partition_spec(abstract)["params"]


def init_cache(model: Any, batch: int, max_decode_length: int,
               encoded_length: int = 1) -> dict:
  """Zeroed decoder key/value cache for `max_decode_length` steps.

  With a decoder prompt the cache also holds its P positions (in front); fill
  them with `Transformer.prefill_decoder_prompt` before the first step.

  Args:
    model: a `Transformer` (its decoder prompt sizes the cache) or a `T5Config`.

  Returns:
    The "cache" collection: per self-attention layer cached_key/cached_value
    [B, P + T_max, N, K] (P the decoder prompt's length, else 0) and cache_index.
    With `scan_layers` one scanned entry holds every layer's: [L, B, P + T_max, N, K]
    and a cache_index [L] (see `cache_batch_axis`).
  """
  model = as_model(model)
  config = model.config
  prompt_length = model.decoder_prompt.length if model.decoder_prompt is not None else 0
  encoded = jnp.zeros((batch, encoded_length, config.emb_dim), config.activation_dtype)
  mask = jnp.ones((batch, encoded_length), jnp.int32)
  # The cache takes the shape of the first decode-mode call's keys: P + T_max.
  tokens = jnp.zeros((batch, prompt_length + max_decode_length), jnp.int32)
  ids = jnp.zeros((batch,), jnp.int32) if model.num_prompts > 1 else None
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), encoded, mask, tokens, decode=True,
                         max_decode_length=max_decode_length, prompt_ids=ids,
                         method=Transformer.decode))
  return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["cache"])


def encode(model: Transformer, params: Params, encoder_input_tokens: Array,
           prompt_ids: Optional[Array] = None) -> tuple[Array, Array]:
  """Runs the encoder once: [B, L] ids -> ([B, S, D] encodings, [B, S] mask).

  S = P + L with an encoder prompt. Shared by decoding and scoring.
  """
  return model.apply({"params": params}, encoder_input_tokens, prompt_ids=prompt_ids,
                     method="encode")


def cache_batch_axis(model: Any) -> int:
  """The batch axis of the decode cache's keys and values: 1 with `scan_layers`
  (layers first), else 0. The cache index has no batch axis."""
  return 1 if as_model(model).config.scan_layers else 0
