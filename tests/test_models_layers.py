"""Building blocks against hand-written matrices and Hugging Face's T5 code."""
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers.models.t5 import modeling_t5

from prompt_tuning.models import adapters, layers


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 20)])
def test_relative_position_bucket_matches_hf(bidirectional, num_buckets, max_distance):
  pos = np.arange(300, dtype=np.int32)
  rel = pos[None, :] - pos[:, None]
  ours = layers.relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
  theirs = modeling_t5.T5Attention._relative_position_bucket(
      torch.tensor(rel, dtype=torch.long), bidirectional=bidirectional,
      num_buckets=num_buckets, max_distance=max_distance).numpy()
  np.testing.assert_array_equal(ours, theirs)
  assert ours.min() >= 0 and ours.max() == num_buckets - 1


def test_relative_position_bucket_small_offsets_are_exact():
  rel = np.array([[0, 1, 2, 3], [-1, 0, 1, 2]], np.int32)
  # Bidirectional, 32 buckets: 16 per side; key after query (positive) -> +16.
  got = layers.relative_position_bucket(rel, True, 32, 128)
  np.testing.assert_array_equal(got, [[0, 17, 18, 19], [1, 0, 17, 18]])
  # Causal: future keys collapse to bucket 0, past keys are their distance.
  got = layers.relative_position_bucket(rel, False, 32, 128)
  np.testing.assert_array_equal(got, [[0, 0, 0, 0], [1, 0, 0, 0]])


def test_masks_against_hand_written_matrices():
  q = jnp.array([[1, 1, 0]])
  k = jnp.array([[1, 0]])
  np.testing.assert_array_equal(layers.attention_mask(q, k)[0, 0],
                                [[True, False], [True, False], [False, False]])
  np.testing.assert_array_equal(layers.causal_mask(3)[0, 0],
                                [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
  bias = layers.mask_to_bias(jnp.array([True, False]), jnp.float32)
  np.testing.assert_array_equal(bias, [0.0, layers.NEG_INF])


def test_rms_norm_matches_definition_and_keeps_float32_stats():
  x = jnp.array([[3.0, 4.0], [1.0, -1.0]])
  norm = layers.RMSNorm()
  params = {"params": {"scale": jnp.array([2.0, 0.5])}}
  y = jax.jit(norm.apply)(params, x)
  rms = np.sqrt(np.mean(np.square(np.asarray(x)), axis=-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(y, np.asarray(x) / rms * [2.0, 0.5], rtol=1e-6)
  y16 = layers.RMSNorm(dtype=jnp.bfloat16).apply(params, x.astype(jnp.bfloat16))
  assert y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32), y, rtol=1e-2)


def test_attention_has_no_logit_scaling_and_respects_bias():
  attn = layers.MultiHeadAttention(num_heads=1, head_dim=2)
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 2))
  eye = jnp.eye(2)
  params = {"params": {n: {"kernel": eye} for n in ("query", "key", "value", "out")}}
  bias = layers.mask_to_bias(layers.causal_mask(3), jnp.float32)
  got = jax.jit(lambda p, x: attn.apply(p, x, x, bias, deterministic=True))(params, x)
  logits = np.einsum("td,sd->ts", x[0], x[0])  # unscaled
  logits = np.where(np.tril(np.ones((3, 3))) > 0, logits, -np.inf)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  np.testing.assert_allclose(got[0], w @ np.asarray(x[0]), rtol=1e-5, atol=1e-6)


def test_lora_adapts_exactly_its_target_projections():
  # LoRA on "value" only: value computes x (W + (alpha / r) A B); query, key, out are plain.
  from prompt_tuning.models import adapters  # pylint: disable=import-outside-toplevel
  spec = adapters.AdapterSpec(lora=adapters.LoraSpec(rank=1, alpha=2.0, targets=("value",)))
  attn = layers.MultiHeadAttention(num_heads=1, head_dim=2, adapters=spec)
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 2))
  a, b = jnp.array([[1.0], [2.0]]), jnp.array([[0.5, -1.0]])
  eye = jnp.eye(2)
  params = {"params": {n: {"kernel": eye} for n in ("query", "key", "out")}}
  params["params"]["value"] = {"kernel": eye, "lora_a": a, "lora_b": b}
  got = attn.apply(params, x, x, None, deterministic=True)
  logits = np.einsum("td,sd->ts", x[0], x[0])
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  values = np.asarray(x[0]) @ (np.eye(2) + 2.0 * np.asarray(a @ b))
  np.testing.assert_allclose(got[0], w @ values, rtol=1e-5, atol=1e-6)
  # Without adapters, no LoRA params exist at all.
  plain = layers.MultiHeadAttention(num_heads=1, head_dim=2)
  names = plain.init(jax.random.PRNGKey(0), x, x, None, deterministic=True)["params"]
  assert all(set(v) == {"kernel"} for v in names.values())


def test_gated_mlp_and_named_kernels():
  mlp = layers.MlpBlock(intermediate_dim=3, activations=("gelu", "linear"))
  x = jax.random.normal(jax.random.PRNGKey(1), (1, 2, 4))
  variables = mlp.init(jax.random.PRNGKey(2), x, deterministic=True)
  p = jax.tree_util.tree_map(np.asarray, variables["params"])
  p = {k: {"kernel": np.asarray(v["kernel"].value if hasattr(v["kernel"], "value")
                                else v["kernel"])} for k, v in p.items()}
  assert sorted(p) == ["wi_0", "wi_1", "wo"]
  got = mlp.apply({"params": p}, x, deterministic=True)
  h0 = np.asarray(x) @ p["wi_0"]["kernel"]
  gelu = 0.5 * h0 * (1 + np.tanh(np.sqrt(2 / np.pi) * (h0 + 0.044715 * h0 ** 3)))
  want = (gelu * (np.asarray(x) @ p["wi_1"]["kernel"])) @ p["wo"]["kernel"]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  single = layers.MlpBlock(intermediate_dim=3, activations=("relu",))
  assert "wi" in single.init(jax.random.PRNGKey(0), x, deterministic=True)["params"]
  with pytest.raises(ValueError, match="expected one of"):
    layers.MlpBlock(3, ("swish_typo",)).init(jax.random.PRNGKey(0), x, deterministic=True)


def _np_attention(q_in, kv_in, p, bias, num_heads):
  """Plain numpy multi-head attention, one row at a time, no logit scaling."""
  split = lambda x: x.reshape(x.shape[0], num_heads, -1)  # [S, N*K] -> [S, N, K]
  rows = []
  for x, y, b in zip(q_in, kv_in, bias):
    q, k, v = (split(a @ p[n]) for a, n in ((x, "query"), (y, "key"), (y, "value")))
    logits = np.einsum("tnk,snk->nts", q, k) + b
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    rows.append(np.einsum("nts,snk->tnk", w, v).reshape(len(x), -1) @ p["out"])
  return np.stack(rows)


def test_grouped_queries_attend_to_their_own_key_value_row():
  # [B * C = 6, T = 3, D = 4] queries in C = 3-row groups, [B = 2, S = 5, D] keys/values.
  attn = layers.MultiHeadAttention(num_heads=2, head_dim=3)
  rng = np.random.default_rng(0)
  q_in = rng.normal(size=(6, 3, 4)).astype(np.float32)
  kv_in = rng.normal(size=(2, 5, 4)).astype(np.float32)
  p = {n: rng.normal(size=(4, 6) if n != "out" else (6, 4)).astype(np.float32)
       for n in ("query", "key", "value", "out")}
  key_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  query_mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]] * 2)
  mask = layers.attention_mask(query_mask, np.repeat(key_mask, 3, 0))  # [6, 1, T, S]
  bias = layers.mask_to_bias(mask, jnp.float32)
  call = jax.jit(lambda p, q, kv, b: attn.apply({"params": {n: {"kernel": k} for n, k in
                                                           p.items()}}, q, kv, b,
                                                deterministic=True))
  got = np.asarray(call(p, q_in, kv_in, bias))
  want = _np_attention(q_in, np.repeat(kv_in, 3, 0), p, np.asarray(bias), 2)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # The same module on the repeated keys/values (the ungrouped path) agrees to rounding.
  repeated = np.asarray(call(p, q_in, np.repeat(kv_in, 3, 0), bias))
  np.testing.assert_allclose(got, repeated, rtol=1e-6, atol=1e-6)
  # Row b * C + c reads row b: rows 0-2 and 3-4 read different keys/values.
  assert np.abs(want[:3] - _np_attention(q_in[:3], np.repeat(kv_in[1:], 3, 0), p,
                                         np.asarray(bias)[:3], 2)).max() > 0.1


def test_grouped_queries_need_a_multiple_of_the_key_value_rows():
  attn = layers.MultiHeadAttention(num_heads=1, head_dim=2)
  q, kv = jnp.ones((5, 3, 2)), jnp.ones((2, 4, 2))
  with pytest.raises(ValueError, match=r"inputs_q has 5 rows and inputs_kv has 2; "
                                       r"expected a multiple of 2"):
    attn.init(jax.random.PRNGKey(0), q, kv, None, deterministic=True)
  with pytest.raises(ValueError, match=r"decode=True with 4 query rows and 2 key/value rows"):
    attn.init(jax.random.PRNGKey(0), jnp.ones((4, 1, 2)), kv, None, deterministic=True,
              decode=True)
  assert layers.query_groups(6, 2) == 3 and layers.query_groups(4, 4) == 1


@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_position_bucket_matches_hf_for_an_odd_bucket_count(bidirectional):
  # 7 buckets: 3 per side bidirectional (max_exact 1), 7 causal (max_exact 3).
  pos = np.arange(64, dtype=np.int32)
  rel = pos[None, :] - pos[:, None]
  ours = layers.relative_position_bucket(rel, bidirectional, 7, 20)
  theirs = modeling_t5.T5Attention._relative_position_bucket(
      torch.tensor(rel, dtype=torch.long), bidirectional=bidirectional,
      num_buckets=7, max_distance=20).numpy()
  np.testing.assert_array_equal(ours, theirs)
  assert ours.dtype == np.int32  # the documented dtype, not just equal values


def test_relative_position_bucket_emits_no_numpy_warnings():
  pos = np.arange(40, dtype=np.int32)
  rel = pos[None, :] - pos[:, None]  # has zero offsets, i.e. log(0) inside
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for bidirectional in (True, False):
      layers.relative_position_bucket(rel, bidirectional, 32, 128)


def test_mask_to_bias_returns_the_requested_dtype():
  bias = layers.mask_to_bias(jnp.array([[True, False]]), jnp.bfloat16)
  assert bias.dtype == jnp.bfloat16
  # bfloat16 keeps 8 mantissa bits: -1e10 rounds to within 0.4%.
  np.testing.assert_allclose(np.asarray(bias, np.float32), [[0.0, -1e10]], rtol=4e-3)


def test_dense_default_init_is_truncated_normal_with_variance_one_over_fan_in():
  fan_in, fan_out = 256, 64
  layer = layers.dense(fan_out, ("embed", "mlp"), "wi", jnp.float32)
  variables = layer.init(jax.random.PRNGKey(0), jnp.ones((1, fan_in)))
  kernel = np.asarray(nn.unbox(variables)["params"]["kernel"])
  assert kernel.shape == (fan_in, fan_out) and kernel.dtype == np.float32
  # Truncated at 2 sigma of the underlying normal, rescaled so Var = 1 / fan_in;
  # 16k draws pin the sample variance to about 1%.
  np.testing.assert_allclose(kernel.var(), 1.0 / fan_in, rtol=0.05)
  sigma = np.sqrt(1.0 / fan_in) / 0.87962566103423978
  assert np.abs(kernel).max() <= 2 * sigma * (1 + 1e-6)


def test_lora_params_carry_the_logical_axes_of_their_projection():
  spec = adapters.AdapterSpec(lora=adapters.LoraSpec(rank=2, alpha=2.0,
                                                     targets=("out", "wo")))
  x = jnp.ones((1, 3, 4))
  attn = layers.MultiHeadAttention(num_heads=1, head_dim=2, adapters=spec)
  out = attn.init(jax.random.PRNGKey(0), x, x, None, deterministic=True)["params"]["out"]
  assert out["kernel"].names == ("joined_kv", "embed")
  assert out["lora_a"].names == ("joined_kv", "lora_rank")
  assert out["lora_b"].names == ("lora_rank", "embed")
  mlp = layers.MlpBlock(intermediate_dim=3, activations=("relu",), adapters=spec)
  wo = mlp.init(jax.random.PRNGKey(0), x, deterministic=True)["params"]["wo"]
  assert wo["lora_a"].names == ("mlp", "lora_rank")
  assert wo["lora_b"].names == ("lora_rank", "embed")


def test_dense_kernels_are_float32_even_with_x64_enabled():
  with jax.enable_x64(True):
    layer = layers.dense(3, ("embed", "mlp"), "wi", jnp.float32)
    variables = layer.init(jax.random.PRNGKey(0), jnp.ones((1, 2), jnp.float32))
    assert nn.unbox(variables)["params"]["kernel"].dtype == jnp.float32
