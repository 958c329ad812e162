"""A plain numpy T5 1.1 (float64, teacher forcing) with the methods written out by hand.

Independent of the flax model except for the relative-position buckets
(`layers.relative_position_bucket`, itself tested against Hugging Face). Reads
our "/"-joined param names, layer by layer:

  LoRA     x W + (alpha / r) x A B                  on every kernel with lora_a / lora_b
  IA3      K * l_k, V * l_v, act(x wi_0) * (x wi_1) * l_ff before wo
  prefix   keys [prefix_k; K], values [prefix_v; V], logits + [0 ... 0 | bias]
  deep     the first P rows of layer i's input (i >= 1) replaced by deep_prompt[i - 1]
"""
import math

import numpy as np

from prompt_tuning.models.layers import relative_position_bucket

NEG_INF = -1e10


def _rms(x, scale):
  return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6) * scale


def _gelu(x):  # the tanh approximation ("gelu_new")
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _softmax(x):
  x = x - x.max(-1, keepdims=True)
  e = np.exp(x)
  return e / e.sum(-1, keepdims=True)


class Reference:
  """The model's function of `flat` params; `lora_scale` = alpha / r."""

  def __init__(self, config, flat, lora_scale=None):
    self.c, self.lora_scale = config, lora_scale
    self.p = {k: np.asarray(v, np.float64) for k, v in flat.items()}

  def dense(self, x, module):
    y = x @ self.p[module + "/kernel"]
    if module + "/lora_a" in self.p:  # LoRA by hand
      y = y + self.lora_scale * (x @ self.p[module + "/lora_a"]) @ self.p[module + "/lora_b"]
    return y

  def relpos(self, stack, q_len, k_len, bidirectional):
    c = self.c
    buckets = relative_position_bucket(np.arange(k_len)[None, :] - np.arange(q_len)[:, None],
                                       bidirectional, c.relative_attention_num_buckets,
                                       c.relative_attention_max_distance)
    return self.p[f"{stack}/relpos_bias/rel_embedding"][:, buckets][None]  # [1, N, T, S]

  def attention(self, xq, xkv, block, bias):
    c = self.c
    q, k, v = (self.dense(x, f"{block}/{n}") for x, n in
               ((xq, "query"), (xkv, "key"), (xkv, "value")))
    if f"{block}/ia3_key" in self.p:  # IA3 by hand
      k, v = k * self.p[f"{block}/ia3_key"], v * self.p[f"{block}/ia3_value"]
    if f"{block}/prefix_key" in self.p:  # prefix keys/values in front, bias 0 there
      batch = xkv.shape[0]
      pk = np.broadcast_to(self.p[f"{block}/prefix_key"], (batch,) + self.p[
          f"{block}/prefix_key"].shape)
      pv = np.broadcast_to(self.p[f"{block}/prefix_value"], pk.shape)
      k, v = np.concatenate([pk, k], 1), np.concatenate([pv, v], 1)
      full = np.broadcast_to(bias, (batch, c.num_heads, xq.shape[1], xkv.shape[1]))
      bias = np.concatenate([np.zeros(full.shape[:-1] + (pk.shape[1],)), full], -1)
    split = lambda x: x.reshape(x.shape[:2] + (c.num_heads, c.head_dim))
    q, k, v = split(q), split(k), split(v)
    logits = np.einsum("btnk,bsnk->bnts", q, k) + bias
    out = np.einsum("bnts,bsnk->btnk", _softmax(logits), v)
    return self.dense(out.reshape(out.shape[:2] + (-1,)), f"{block}/out")

  def mlp(self, x, block):
    h = _gelu(self.dense(x, f"{block}/wi_0")) * self.dense(x, f"{block}/wi_1")
    if f"{block}/ia3_hidden" in self.p:
      h = h * self.p[f"{block}/ia3_hidden"]
    return self.dense(h, f"{block}/wo")

  def encode(self, embedded, mask):
    """[B, S, D] embeddings (prompt included), [B, S] mask -> [B, S, D]."""
    x, s = embedded.astype(np.float64), embedded.shape[1]
    allowed = (mask[:, None, :, None] > 0) & (mask[:, None, None, :] > 0)
    bias = self.relpos("encoder", s, s, True) + np.where(allowed, 0.0, NEG_INF)
    for i in range(self.c.num_encoder_layers):
      layer = f"encoder/layers_{i}"
      if i and "encoder/deep_prompt/prompt" in self.p:  # replace the prompt rows
        prompt = self.p["encoder/deep_prompt/prompt"][i - 1]
        x = np.concatenate([np.broadcast_to(prompt, (x.shape[0],) + prompt.shape),
                            x[:, prompt.shape[0]:]], 1)
      y = _rms(x, self.p[f"{layer}/pre_attention_layer_norm/scale"])
      x = x + self.attention(y, y, f"{layer}/attention", bias)
      x = x + self.mlp(_rms(x, self.p[f"{layer}/pre_mlp_layer_norm/scale"]), f"{layer}/mlp")
    return _rms(x, self.p["encoder/encoder_norm/scale"])

  def decode(self, encoded, encoder_mask, decoder_input_tokens, decoder_target_tokens):
    """Teacher-forced [B, T, V] logits."""
    y = self.p["token_embedder/embedding"][decoder_input_tokens]
    t = y.shape[1]
    query = decoder_target_tokens > 0
    causal = np.tril(np.ones((t, t), bool))[None, None]
    allowed = (query[:, None, :, None] & query[:, None, None, :]) & causal
    self_bias = self.relpos("decoder", t, t, False) + np.where(allowed, 0.0, NEG_INF)
    cross = query[:, None, :, None] & (encoder_mask[:, None, None, :] > 0)
    cross_bias = np.where(cross, 0.0, NEG_INF)
    for i in range(self.c.num_decoder_layers):
      layer = f"decoder/layers_{i}"
      z = _rms(y, self.p[f"{layer}/pre_self_attention_layer_norm/scale"])
      y = y + self.attention(z, z, f"{layer}/self_attention", self_bias)
      z = _rms(y, self.p[f"{layer}/pre_cross_attention_layer_norm/scale"])
      y = y + self.attention(z, encoded, f"{layer}/encoder_decoder_attention", cross_bias)
      y = y + self.mlp(_rms(y, self.p[f"{layer}/pre_mlp_layer_norm/scale"]), f"{layer}/mlp")
    y = _rms(y, self.p["decoder/decoder_norm/scale"])
    return y @ self.p["decoder/logits_dense/kernel"]

  def __call__(self, tokens, decoder_input_tokens, decoder_target_tokens):
    """Our `Transformer.__call__`, an encoder prompt (if any) as a prefix."""
    embedded = self.p["token_embedder/embedding"][tokens]
    mask = (tokens > 0).astype(np.int32)
    if "encoder/prompt/prompt" in self.p:
      prompt = self.p["encoder/prompt/prompt"]
      batch = tokens.shape[0]
      embedded = np.concatenate([np.broadcast_to(prompt, (batch,) + prompt.shape), embedded], 1)
      mask = np.concatenate([np.ones((batch, prompt.shape[0]), np.int32), mask], 1)
    encoded = self.encode(embedded, mask)
    return self.decode(encoded, mask, decoder_input_tokens, decoder_target_tokens)


def prefix_mlp(flat, stack, block, num_layers):
  """Li & Liang's MLP by hand: ([L, P, N * K] keys, [L, P, N * K] values)."""
  get = lambda name: np.asarray(flat[f"{stack}/prefix/{block}/{name}"], np.float64)
  hidden = np.tanh(get("embedding") @ get("wi/kernel") + get("wi/bias"))
  out = hidden @ get("wo/kernel") + get("wo/bias")  # [P, L * 2 * N * K]
  out = out.reshape(out.shape[0], num_layers, 2, -1)  # column (l * 2 + j) * NK + c
  return out[:, :, 0].transpose(1, 0, 2), out[:, :, 1].transpose(1, 0, 2)


def with_folded_prefix(config, flat):
  """`flat` with each reparameterised prefix replaced by its per-layer keys/values."""
  out = {k: v for k, v in flat.items() if "/prefix/" not in k}
  for stack, blocks, layers in (("encoder", ("attention",), config.num_encoder_layers),
                                ("decoder", ("self_attention", "encoder_decoder_attention"),
                                 config.num_decoder_layers)):
    for block in blocks:
      if f"{stack}/prefix/{block}/embedding" not in flat:
        continue
      keys, values = prefix_mlp(flat, stack, block, layers)
      for i in range(layers):
        out[f"{stack}/layers_{i}/{block}/prefix_key"] = keys[i]
        out[f"{stack}/layers_{i}/{block}/prefix_value"] = values[i]
  return out
