"""The encoder-decoder: T5X names, prompt seam, padding invariance, dtypes."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.models import T5Config, Transformer, get_config, init_params, param_axes
from prompt_tuning.prompts import prompt as prompt_lib, spec as spec_lib

TINY = get_config("tiny", dropout_rate=0.0)


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else k
    out.update(_flat(v, path) if isinstance(v, dict) else {path: v})
  return out


def test_param_names_and_shapes_are_t5x():
  flat = _flat(init_params(TINY, jax.random.PRNGKey(0)))
  d, nk, f, v, n, r = 16, 16, 32, 64, 2, 32
  want = {"token_embedder/embedding": (v, d),
          "encoder/relpos_bias/rel_embedding": (n, r),
          "encoder/encoder_norm/scale": (d,),
          "decoder/relpos_bias/rel_embedding": (n, r),
          "decoder/decoder_norm/scale": (d,),
          "decoder/logits_dense/kernel": (d, v)}
  for i in range(2):
    e, dec = f"encoder/layers_{i}", f"decoder/layers_{i}"
    want[f"{e}/pre_attention_layer_norm/scale"] = (d,)
    want[f"{e}/pre_mlp_layer_norm/scale"] = (d,)
    for a in ("query", "key", "value"):
      want[f"{e}/attention/{a}/kernel"] = (d, nk)
      want[f"{dec}/self_attention/{a}/kernel"] = (d, nk)
      want[f"{dec}/encoder_decoder_attention/{a}/kernel"] = (d, nk)
    want[f"{e}/attention/out/kernel"] = (nk, d)
    want[f"{dec}/self_attention/out/kernel"] = (nk, d)
    want[f"{dec}/encoder_decoder_attention/out/kernel"] = (nk, d)
    for stack in (e, dec):
      want[f"{stack}/mlp/wi_0/kernel"] = (d, f)
      want[f"{stack}/mlp/wi_1/kernel"] = (d, f)
      want[f"{stack}/mlp/wo/kernel"] = (f, d)
    for ln in ("pre_self_attention_layer_norm", "pre_cross_attention_layer_norm",
               "pre_mlp_layer_norm"):
      want[f"{dec}/{ln}/scale"] = (d,)
  assert {k: tuple(a.shape) for k, a in flat.items()} == want
  assert all(a.dtype == jnp.float32 for a in flat.values())


def test_every_param_has_logical_axes():
  axes = _flat(param_axes(Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(3))))
  assert axes["encoder/prompt/prompt"] == jax.sharding.PartitionSpec("prompt", "prompt_embed")
  assert axes["token_embedder/embedding"] == jax.sharding.PartitionSpec("vocab", "embed")
  assert axes["decoder/logits_dense/kernel"] == jax.sharding.PartitionSpec("embed", "vocab")
  assert all(len(spec) > 0 for spec in axes.values())
  bank = _flat(param_axes(Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(3, 4))))
  assert bank["encoder/prompt/prompt"] == jax.sharding.PartitionSpec(
      "prompt_bank", "prompt", "prompt_embed")


def test_tied_config_has_no_logits_dense():
  flat = _flat(init_params(TINY.replace(logits_via_embedding=True,
                                        mlp_activations=("relu",)), jax.random.PRNGKey(0)))
  assert "decoder/logits_dense/kernel" not in flat
  assert "encoder/layers_0/mlp/wi/kernel" in flat


def _batch():
  enc = jnp.array([[5, 6, 7, 1, 0, 0], [8, 9, 1, 0, 0, 0]], jnp.int32)
  tgt = jnp.array([[3, 4, 1], [10, 1, 0]], jnp.int32)
  dec_in = jnp.concatenate([jnp.zeros((2, 1), jnp.int32), tgt[:, :-1]], axis=1)
  return enc, dec_in, tgt


def test_extra_encoder_padding_does_not_change_logits():
  params = init_params(TINY, jax.random.PRNGKey(1))
  model = Transformer(TINY)
  enc, dec_in, tgt = _batch()
  apply = jax.jit(model.apply)
  short = apply({"params": params}, enc[:, :4], dec_in, tgt)
  long = apply({"params": params}, enc, dec_in, tgt)
  real = np.asarray(tgt) > 0  # padded target rows attend to nothing real
  np.testing.assert_allclose(np.asarray(short)[real], np.asarray(long)[real], atol=1e-5)


def _manual_logits(params, embedded, mask, dec_in, tgt):
  """The prompt-free model run on embeddings and a mask the test built itself."""
  bare = Transformer(TINY)
  plain = dict(params, encoder={k: v for k, v in params["encoder"].items() if k != "prompt"})
  encoded, m = bare.apply({"params": plain}, embedded, mask, method=Transformer.encode_embedded)
  return bare.apply({"params": plain}, encoded, m, dec_in, tgt, method=Transformer.decode)


def _by_hand(combine, prompt, emb, mask):
  """Each layout written out row by row in numpy (no combine function involved)."""
  rows, masks = [], []
  p = len(prompt)
  for e, m in zip(np.asarray(emb), np.asarray(mask)):
    n = int(m.sum())
    if combine == "prefix":
      rows.append(np.concatenate([prompt, e]))
      masks.append(np.concatenate([np.ones(p), m]))
    elif combine == "after_bos":
      rows.append(np.concatenate([e[:1], prompt, e[1:]]))
      masks.append(np.concatenate([m[:1], np.ones(p), m[1:]]))
    else:  # suffix: tokens, prompt, then the padding
      rows.append(np.concatenate([e[:n], prompt, e[n:]]))
      masks.append(np.concatenate([m[:n], np.ones(p), m[n:]]))
  return jnp.asarray(np.stack(rows), jnp.float32), jnp.asarray(np.stack(masks), jnp.int32)


@pytest.mark.parametrize("combine", ["prefix", "after_bos", "suffix"])
def test_each_prompt_layout_equals_the_hand_built_input(combine):
  # The model must join the prompt the way its spec says; a model that always
  # prefixes fails the after_bos and suffix cases.
  model = Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(3, combine=combine))
  params = init_params(model, jax.random.PRNGKey(2))
  prompt = np.asarray(params["encoder"]["prompt"]["prompt"])
  enc, dec_in, tgt = _batch()
  with_prompt = jax.jit(model.apply)({"params": params}, enc, dec_in, tgt)
  emb = Transformer(TINY).apply({"params": params}, enc, method=Transformer.embed)
  embedded, mask = _by_hand(combine, prompt, emb, (enc > 0).astype(np.int32))
  manual = jax.jit(_manual_logits)
  np.testing.assert_allclose(with_prompt, manual(params, embedded, mask, dec_in, tgt), atol=1e-5)
  # ... and the layouts really differ from one another for this batch:
  others = [c for c in ("prefix", "after_bos", "suffix") if c != combine]
  for other in others:
    e2, m2 = _by_hand(other, prompt, emb, (enc > 0).astype(np.int32))
    assert np.abs(np.asarray(with_prompt - manual(params, e2, m2, dec_in, tgt))
                  ).max() > 1e-3, other


def test_the_prompt_changes_the_logits():
  model = Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(3))
  params = init_params(model, jax.random.PRNGKey(2))
  enc, dec_in, tgt = _batch()
  plain = dict(params, encoder={k: v for k, v in params["encoder"].items() if k != "prompt"})
  with_prompt = jax.jit(model.apply)({"params": params}, enc, dec_in, tgt)
  without = jax.jit(Transformer(TINY).apply)({"params": plain}, enc, dec_in, tgt)
  assert np.abs(np.asarray(with_prompt - without)).max() > 1e-3


def test_combine_functions_against_hand_written_layouts():
  p = jnp.broadcast_to(jnp.array([[100.0], [200.0]]), (2, 2, 1))  # [B=2, P=2, D=1]
  emb = jnp.array([[[1.0], [2.0], [3.0]], [[4.0], [0.0], [0.0]]])  # [B=2, L=3, D=1]
  mask = jnp.array([[1, 1, 1], [1, 0, 0]])
  x, m = prompt_lib.combine_prefix(p, emb, mask)
  np.testing.assert_array_equal(x[..., 0], [[100, 200, 1, 2, 3], [100, 200, 4, 0, 0]])
  np.testing.assert_array_equal(m, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
  x, m = prompt_lib.combine_after_bos(p, emb, mask)
  np.testing.assert_array_equal(x[..., 0], [[1, 100, 200, 2, 3], [4, 100, 200, 0, 0]])
  np.testing.assert_array_equal(m, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
  x, m = jax.jit(prompt_lib.combine_suffix)(p, emb, mask)
  np.testing.assert_array_equal(x[..., 0], [[1, 2, 3, 100, 200], [4, 100, 200, 0, 0]])
  np.testing.assert_array_equal(m, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


def test_combine_functions_take_a_prompt_per_example():
  p = jnp.array([[[100.0]], [[200.0]]])                   # [B=2, P=1, D=1]: one each
  emb = jnp.array([[[1.0], [2.0]], [[3.0], [0.0]]])       # [B=2, L=2, D=1]
  mask = jnp.array([[1, 1], [1, 0]])
  np.testing.assert_array_equal(prompt_lib.combine_prefix(p, emb, mask)[0][..., 0],
                                [[100, 1, 2], [200, 3, 0]])
  np.testing.assert_array_equal(prompt_lib.combine_after_bos(p, emb, mask)[0][..., 0],
                                [[1, 100, 2], [3, 200, 0]])
  np.testing.assert_array_equal(prompt_lib.combine_suffix(p, emb, mask)[0][..., 0],
                                [[1, 2, 100], [3, 200, 0]])


def test_after_bos_keeps_a_padded_first_position_padded():
  # The first position's mask is the input's own: a padded first token (here
  # the middle row, wholly padding, and a row starting with padding) stays 0.
  p = jnp.ones((3, 2, 1))
  emb = jnp.zeros((3, 3, 1))
  mask = jnp.array([[1, 1, 0], [0, 0, 0], [0, 1, 1]])
  _, m = prompt_lib.combine_after_bos(p, emb, mask)
  np.testing.assert_array_equal(m, [[1, 1, 1, 1, 0], [0, 1, 1, 0, 0], [0, 1, 1, 1, 1]])


def test_uniform_symmetric_range_is_minus_to_plus_half():
  x = prompt_lib.uniform_symmetric(0.5)(jax.random.PRNGKey(0), (200, 50))
  assert -0.5 <= float(x.min()) < -0.49 and 0.49 < float(x.max()) <= 0.5


@pytest.mark.parametrize("combine", ["after_bos", "suffix"])
def test_prompt_variants_run_and_extend_the_encoder(combine):
  model = Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(4, combine=combine))
  params = init_params(model, jax.random.PRNGKey(3))
  enc, _, _ = _batch()
  encoded, mask = jax.jit(lambda p: model.apply(
      {"params": p}, enc, method=Transformer.encode))(params)
  assert encoded.shape == (2, 6 + 4, 16)
  np.testing.assert_array_equal(mask.sum(1), (enc > 0).sum(1) + 4)


def test_bfloat16_activations_stay_close_and_logits_are_float32():
  params = init_params(TINY, jax.random.PRNGKey(4))
  enc, dec_in, tgt = _batch()
  f32 = jax.jit(Transformer(TINY).apply)({"params": params}, enc, dec_in, tgt)
  b16 = jax.jit(Transformer(TINY.replace(dtype="bfloat16")).apply)(
      {"params": params}, enc, dec_in, tgt)
  assert b16.dtype == jnp.float32
  assert np.abs(np.asarray(b16 - f32)).max() < 0.1 * np.abs(np.asarray(f32)).max()
  # bfloat16 rounding moves the logits (a model that ignored dtype would not).
  assert np.abs(np.asarray(b16 - f32)).max() > 1e-4


def test_bfloat16_activations_are_really_bfloat16_inside():
  # Every layer's output, attention and MLP included, is bfloat16 when dtype says so.
  params = init_params(TINY, jax.random.PRNGKey(4))
  enc, dec_in, tgt = _batch()
  for dtype in ("bfloat16", "float32"):
    model = Transformer(TINY.replace(dtype=dtype))
    _, state = jax.jit(lambda p: model.apply(p, enc, dec_in, tgt, capture_intermediates=True))(
        {"params": params})
    inter = {k: v[0] for k, v in _flat(state["intermediates"]).items()}  # sown as 1-tuples
    layer_outputs = {k: v for k, v in inter.items()
                     if re.search(r"layers_\d+/(attention|self_attention|mlp)/__call__", k)}
    assert len(layer_outputs) >= 6
    assert {str(v.dtype) for v in layer_outputs.values()} == {dtype}, (dtype, {
        k: str(v.dtype) for k, v in layer_outputs.items()})


def test_dropout_is_active_only_when_enabled():
  cfg = TINY.replace(dropout_rate=0.5)
  params = init_params(cfg, jax.random.PRNGKey(5))
  enc, dec_in, tgt = _batch()
  model = Transformer(cfg)
  apply = jax.jit(model.apply, static_argnames="enable_dropout")
  a = apply({"params": params}, enc, dec_in, tgt)
  b = apply({"params": params}, enc, dec_in, tgt)
  np.testing.assert_array_equal(a, b)
  c = apply({"params": params}, enc, dec_in, tgt, enable_dropout=True,
            rngs={"dropout": jax.random.PRNGKey(0)})
  assert np.abs(np.asarray(a - c)).max() > 1e-3


def test_config_validation_names_the_field():
  with pytest.raises(ValueError, match="prompt combination 'middle'"):
    spec_lib.encoder_prompt(3, combine="middle")
  with pytest.raises(ValueError, match="T5Config.dtype='float16'"):
    T5Config(dtype="float16")
  with pytest.raises(ValueError, match="T5Config.emb_dim=0"):
    T5Config(emb_dim=0)
  with pytest.raises(ValueError, match="unknown t5_1_1 size 'huge'; expected one of"):
    get_config("huge")
  with pytest.raises(ValueError, match="unknown T5 family 'gpt'"):
    get_config("base", family="gpt")
  assert get_config("xxl").emb_dim == 4096 and get_config("base").mlp_dim == 2048


def test_combine_functions_keep_the_dtypes_and_suffix_keeps_the_padding_in_order():
  # A float32 prompt joins bfloat16 embeddings as bfloat16 (the activation dtype); the
  # int32 mask stays int32. The padding slots hold distinct values here, so the rows
  # after a suffix prompt must be the input's padding rows, in their order.
  p = jnp.broadcast_to(jnp.array([[100.0], [200.0]]), (2, 2, 1))      # [B=2, P=2, D=1]
  emb = jnp.array([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]], jnp.bfloat16)
  mask = jnp.array([[1, 1, 1], [1, 0, 0]], jnp.int32)
  want = {"prefix": [[100, 200, 1, 2, 3], [100, 200, 4, 5, 6]],
          "after_bos": [[1, 100, 200, 2, 3], [4, 100, 200, 5, 6]],
          "suffix": [[1, 2, 3, 100, 200], [4, 100, 200, 5, 6]]}
  for name, rows in want.items():
    x, m = jax.jit(prompt_lib.get_combine_fn(name))(p, emb, mask)
    assert (x.dtype, m.dtype) == (jnp.bfloat16, jnp.int32), name
    np.testing.assert_array_equal(np.asarray(x[..., 0], np.float32), rows, err_msg=name)
    np.testing.assert_array_equal(m, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], err_msg=name)


def test_uniform_symmetric_default_scale_is_the_papers_half():
  """With no argument the range is the paper's U[-0.5, 0.5]."""
  x = prompt_lib.uniform_symmetric()(jax.random.PRNGKey(0), (200, 50))
  assert -0.5 <= float(x.min()) < -0.49 and 0.49 < float(x.max()) <= 0.5


def test_uniform_symmetric_samples_in_the_dtype_it_is_given():
  """The initializer honours the dtype argument flax (or a caller) passes."""
  y = prompt_lib.uniform_symmetric(0.5)(jax.random.PRNGKey(1), (4, 3), jnp.bfloat16)
  assert y.dtype == jnp.bfloat16 and y.shape == (4, 3)
  assert float(jnp.abs(y.astype(jnp.float32)).max()) <= 0.5
