"""LoRA, IA3, prefix tuning and deep prompts in the model, against references by hand.

The tiny T5 1.1 (d_model 16, 2 + 2 layers, vocab 64) with numpy-drawn weights;
every method's params random and far from their init, so each check sees the
method. The reference is `adapter_reference.Reference`, a float64 numpy T5 with
each method written out (LoRA as x W + (alpha / r) x A B, IA3 as products, the
prefix as extra einsum keys with a zero bias, deep prompts as a row substitution).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import model_fixtures
from adapter_reference import Reference, with_folded_prefix
from prompt_tuning import tree
from prompt_tuning.models import (Transformer, adapter_params, decoding, get_config,
                                  init_params, param_axes, scan)
from prompt_tuning.models.adapters import (AdapterSpec, LoraSpec, PrefixSpec,
                                           DEEP_PROMPT_PATH, NEW_AXES)
from prompt_tuning.prompts import spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH

TINY = get_config("tiny", dropout_rate=0.0)
P = 3
ALL_TARGETS = ("query", "key", "value", "out", "wi_0", "wi_1", "wo")
SPECS = {
    "lora": AdapterSpec(lora=LoraSpec(rank=2, alpha=3.0, targets=ALL_TARGETS)),
    "lora_qv": AdapterSpec(lora=LoraSpec(rank=4)),
    "ia3": AdapterSpec(ia3=True),
    "prefix": AdapterSpec(prefix=PrefixSpec(2, hidden_dim=6)),
    "prefix_folded": AdapterSpec(prefix=PrefixSpec(2, reparameterize=False)),
    "deep_prompts": AdapterSpec(deep_prompts=True),
    "all": AdapterSpec(lora=LoraSpec(rank=2, alpha=3.0, targets=ALL_TARGETS), ia3=True,
                       prefix=PrefixSpec(2, hidden_dim=6), deep_prompts=True),
}
# "all" holds LoRA, IA3, a reparameterised prefix and deep prompts at once: a method whose
# cache or scan handling broke would break it; the folded prefix has params of its own.
MIXED_SPECS = ["prefix_folded", "all"]
TOKENS = np.array([[5, 6, 7, 8, 9, 1], [10, 11, 1, 0, 0, 0], [3, 4, 2, 1, 0, 0]], np.int32)
TARGETS = np.array([[3, 4, 5, 1], [20, 1, 0, 0], [30, 31, 32, 1]], np.int32)
DECODER_INPUTS = np.pad(TARGETS[:, :-1], ((0, 0), (1, 0)))


def _model(name, config=TINY, prompt=True):
  return Transformer(config, encoder_prompt=spec_lib.encoder_prompt(P) if prompt else None,
                     adapters=SPECS[name])


def _random(model, seed=0):
  """Random params; LoRA's A and B N(0, 0.3), IA3's vectors U[0.5, 1.5]."""
  return model_fixtures.away_from_init(
      tree.flatten(model_fixtures.random_params(model, seed)), seed)


@functools.lru_cache(maxsize=None)
def _apply_fn(model):
  return jax.jit(lambda params, *args: model.apply({"params": params}, *args))


def _logits(model, flat):
  return np.asarray(_apply_fn(model)(tree.unflatten(flat), TOKENS, DECODER_INPUTS, TARGETS))


def _reference(model, flat):
  """The reference's logits, with ours at padded targets (whose rows attend to
  nothing; float64 keeps the relative bias under the mask, float32 does not)."""
  scale = model.adapters.lora.scale if model.adapters and model.adapters.lora else None
  want = Reference(model.config, with_folded_prefix(model.config, flat), scale)(
      TOKENS, DECODER_INPUTS, TARGETS)
  return np.where((TARGETS > 0)[..., None], want, _logits(model, flat))


def _frozen_part(model, flat):
  return {p: v for p, v in flat.items() if not model.adapters.method_of(p) or p == PROMPT_PATH}


def test_the_reference_is_the_plain_model():
  model = Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(P))
  flat = tree.flatten(model_fixtures.random_params(model))
  np.testing.assert_allclose(_logits(model, flat), _reference(model, flat), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_method_equals_the_reference_written_by_hand(name):
  model = _model(name)
  flat = _random(model)
  ours = _logits(model, flat)
  np.testing.assert_allclose(ours, _reference(model, flat), atol=1e-4, rtol=0)
  # ... and the method matters: the frozen model alone gives other logits.
  plain = Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(P))
  assert np.abs(ours - _logits(plain, _frozen_part(model, flat))).max() > 1e-2


def test_lora_without_a_prompt_equals_the_reference():
  model = _model("lora", prompt=False)
  flat = _random(model)
  np.testing.assert_allclose(_logits(model, flat), _reference(model, flat), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["all_at_init"])  # LoRA and IA3 together
@pytest.mark.parametrize("dtype,scan_layers", [("float32", False), ("bfloat16", False),
                                               ("float32", True)])
def test_lora_and_ia3_at_init_are_the_frozen_model_bit_for_bit(name, dtype, scan_layers):
  spec = (SPECS["lora"].replace(ia3=True) if name == "all_at_init" else SPECS[name])
  config = TINY.replace(dtype=dtype, scan_layers=scan_layers)
  plain = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(P))
  model = plain.clone(adapters=spec)
  frozen = scan.to_layout(model_fixtures.random_params(plain, seed=4), config)
  method = adapter_params.init_adapter_params(model, frozen, jax.random.PRNGKey(3))
  flat = tree.flatten(method)
  assert sorted(flat) == [p for p in adapter_params.method_paths(model)]
  for path, value in flat.items():
    if path.endswith("/lora_a"):
      assert np.abs(value).max() > 0.05 and np.abs(value).max() <= value.shape[0] ** -0.5
    elif path.endswith("/lora_b"):
      assert not value.any()
    else:
      assert (value == 1).all()
  want = _logits(plain, tree.flatten(frozen))
  got = _logits(model, tree.flatten(tree.merge(frozen, method)))
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", MIXED_SPECS)
def test_scan_layers_and_remat_give_the_same_logits_and_gradients(name):
  model = _model(name)
  flat = _random(model, seed=1)
  config = TINY.replace(scan_layers=True, remat_policy="minimal")
  scanned = model.clone(config=config)
  stacked = tree.flatten(scan.stack_layers(tree.unflatten(flat), TINY))
  # nn.scan stacks the method params inside the layers like every other param.
  abstract = adapter_params.abstract_params(scanned)
  assert {p: v.shape for p, v in abstract.items()} == {p: v.shape for p, v in stacked.items()}
  np.testing.assert_allclose(_logits(scanned, stacked), _logits(model, flat), atol=1e-5,
                             rtol=0)

  def grads(m, params):
    method = {p: v for p, v in params.items() if m.adapters.method_of(p)}
    frozen = {p: v for p, v in params.items() if p not in method}
    loss = lambda t: jnp.sum(jnp.sin(m.apply({"params": tree.unflatten({**frozen, **t})},
                                             TOKENS, DECODER_INPUTS, TARGETS)))
    return tree.flatten(jax.jit(jax.grad(loss))(method))

  want = grads(model, flat)
  got = tree.flatten(scan.unstack_layers(tree.unflatten(grads(scanned, stacked)), TINY))
  assert sorted(got) == sorted(want) and len(want) > 1
  for path in want:
    scale = np.abs(want[path]).max()  # float32 rounding of sums as large as this
    np.testing.assert_allclose(got[path], want[path], atol=1e-4 * scale, rtol=0,
                               err_msg=path)
  assert max(np.abs(g).max() for g in want.values()) > 1e-3


def test_method_params_carry_their_logical_axes():
  model = _model("all")
  axes = {p: tuple(s) for p, s in tree.flatten(param_axes(model)).items()}
  layer = "encoder/layers_0/attention"
  assert axes[f"{layer}/query/lora_a"] == ("embed", "lora_rank")
  assert axes[f"{layer}/query/lora_b"] == ("lora_rank", "joined_kv")
  assert axes[f"{layer}/out/lora_a"] == ("joined_kv", "lora_rank")
  assert axes["decoder/layers_1/mlp/wo/lora_a"] == ("mlp", "lora_rank")
  assert axes["decoder/layers_1/mlp/wo/lora_b"] == ("lora_rank", "embed")
  assert axes[f"{layer}/ia3_key"] == axes[f"{layer}/ia3_value"] == ("joined_kv",)
  assert axes["decoder/layers_0/mlp/ia3_hidden"] == ("mlp",)
  prefix = "decoder/prefix/encoder_decoder_attention"
  assert axes[f"{prefix}/embedding"] == ("prefix", "prefix_embed")
  assert axes[f"{prefix}/wi/kernel"] == ("prefix_embed", "prefix_hidden")
  assert axes[f"{prefix}/wi/bias"] == ("prefix_hidden",)
  assert axes[f"{prefix}/wo/kernel"] == ("prefix_hidden", "prefix_out")
  assert axes[f"{prefix}/wo/bias"] == ("prefix_out",)
  assert axes[DEEP_PROMPT_PATH] == ("prompt_layers", "prompt", "prompt_embed")
  folded = {p: tuple(s) for p, s in tree.flatten(param_axes(_model("prefix_folded"))).items()}
  assert folded[f"{layer}/prefix_key"] == folded[f"{layer}/prefix_value"] == ("prefix",
                                                                              "joined_kv")
  scanned = tree.flatten(param_axes(model.clone(config=TINY.replace(scan_layers=True))))
  assert tuple(scanned["encoder/layers/attention/query/lora_a"]) == ("embed", "layers",
                                                                     "lora_rank")
  assert all(s is not None and None not in tuple(s) for s in axes.values())


def test_the_sharding_rules_name_every_method_axis_and_replicate_the_new_ones():
  from prompt_tuning import sharding  # pylint: disable=import-outside-toplevel
  model = _model("all").clone(config=TINY.replace(scan_layers=True))
  names = {n for s in tree.flatten(param_axes(model)).values() for n in s}
  assert set(NEW_AXES) <= names <= set(sharding.LOGICAL_AXES)
  rules = dict(sharding.DEFAULT_RULES)
  assert all(rules[n] is None for n in NEW_AXES)
  partitioning = sharding.Partitioning.create()
  shardings = partitioning.param_shardings(model, adapter_params.abstract_params(model))
  assert len(tree.flatten(shardings)) == len(adapter_params.abstract_params(model))


def test_parameter_counts_equal_their_formulas():
  # N * K = 8 != D = 16, so the formulas' widths cannot be confused.
  config = TINY.replace(head_dim=4)
  d, nk, f, le, ld, r = 16, 8, 32, config.num_encoder_layers, config.num_decoder_layers, 2
  lora = Transformer(config, adapters=AdapterSpec(lora=LoraSpec(r, targets=ALL_TARGETS)))
  attention = r * (d + nk)  # query, key, value: [D, NK]; out: [NK, D]
  mlp = r * (d + f)  # wi_0, wi_1: [D, F]; wo: [F, D]
  assert adapter_params.count_params(lora) == {
      "lora": le * (4 * attention + 3 * mlp) + ld * (8 * attention + 3 * mlp)}
  relu = config.replace(mlp_activations=("relu",))
  wi = Transformer(relu, adapters=AdapterSpec(lora=LoraSpec(r, targets=("wi", "value"))))
  assert adapter_params.count_params(wi) == {"lora": (le + ld) * mlp + (le + 2 * ld) * attention}
  ia3 = Transformer(config, adapters=AdapterSpec(ia3=True))
  assert adapter_params.count_params(ia3) == {"ia3": le * (2 * nk + f) + ld * (4 * nk + f)}
  p, h = 5, 7
  prefix = Transformer(config, adapters=AdapterSpec(prefix=PrefixSpec(p, hidden_dim=h)))
  inference = le * 2 * p * nk + 2 * ld * 2 * p * nk  # decoder: self- and cross-attention
  assert adapter_params.count_params(prefix, inference=True) == {"prefix": inference}
  mlp_of = lambda layers: p * d + d * h + h + h * layers * 2 * nk + layers * 2 * nk
  assert adapter_params.count_params(prefix) == {"prefix": mlp_of(le) + 2 * mlp_of(ld)}
  folded = adapter_params.fold_prefix(prefix, init_params(prefix, jax.random.PRNGKey(0)))[1]
  assert sum(v.size for k, v in tree.flatten(folded).items() if "prefix_" in k) == inference
  deep = Transformer(config.replace(num_encoder_layers=3),
                     encoder_prompt=spec_lib.encoder_prompt(p),
                     adapters=AdapterSpec(deep_prompts=True))
  assert adapter_params.count_params(deep) == {"deep_prompts": 3 * p * d}
  bank = deep.clone(encoder_prompt=spec_lib.encoder_prompt(p, num_prompts=2))
  assert adapter_params.count_params(bank) == {"deep_prompts": 2 * 3 * p * d}


@pytest.mark.parametrize("scan_layers", [False, True])
def test_merged_lora_gives_the_lora_models_logits(scan_layers):
  model = _model("all", config=TINY.replace(scan_layers=scan_layers))
  flat = _random(model, seed=2)
  if scan_layers:
    flat = tree.flatten(scan.stack_layers(tree.unflatten(
        _random(_model("all"), seed=2)), TINY))
  merged_model, merged = adapter_params.merge_lora(model, tree.unflatten(flat))
  assert merged_model.adapters == SPECS["all"].replace(lora=None)
  merged = tree.flatten(merged)
  assert sorted(merged) == sorted(adapter_params.abstract_params(merged_model))
  kernel = ("encoder/layers/attention/query/kernel" if scan_layers
            else "encoder/layers_0/attention/query/kernel")
  assert not np.allclose(merged[kernel], flat[kernel])
  np.testing.assert_allclose(_logits(merged_model, merged), _logits(model, flat), atol=1e-5,
                             rtol=0)
  only = _model("lora")
  plain, params = adapter_params.merge_lora(only, tree.unflatten(_random(only)))
  assert plain.adapters is None
  np.testing.assert_allclose(_logits(plain, tree.flatten(params)), _logits(only, _random(only)),
                             atol=1e-5, rtol=0)


@pytest.mark.parametrize("scan_layers", [False, True])
def test_folded_prefix_gives_the_reparameterised_models_logits(scan_layers):
  model = _model("prefix")
  flat = _random(model, seed=5)
  if scan_layers:
    model = model.clone(config=TINY.replace(scan_layers=True))
    flat = tree.flatten(scan.stack_layers(tree.unflatten(flat), TINY))
  folded_model, folded = adapter_params.fold_prefix(model, tree.unflatten(flat))
  assert folded_model.adapters.prefix == PrefixSpec(2, reparameterize=False, hidden_dim=6)
  folded = tree.flatten(folded)
  assert sorted(folded) == sorted(adapter_params.abstract_params(folded_model))
  assert not any("/prefix/" in p for p in folded)
  np.testing.assert_allclose(_logits(folded_model, folded), _logits(model, flat), atol=1e-5,
                             rtol=0)


# ------------------------------------------------------------------ decoding

greedy = jax.jit(decoding.greedy_decode, static_argnums=(0, 3))
beam = jax.jit(decoding.beam_search, static_argnums=(0, 3, 4, 5))

# Seeds whose greedy answers end at different steps within DECODE_LENGTH (so the
# cache after EOS is exercised); checked by each test's premise.
DECODE_SEEDS = {"prefix_folded": 7}
DECODE_LENGTH = 8


def _decoding_setup(name):
  model = _model(name)
  flat = _random(model, seed=DECODE_SEEDS.get(name, 9))
  flat["decoder/logits_dense/kernel"] = flat["decoder/logits_dense/kernel"] * 3.0
  return model, tree.unflatten(flat)


def _teacher_forced_log_probs(model, params, ids):
  decoder_inputs = np.pad(np.asarray(ids)[:, :-1], ((0, 0), (1, 0)))
  logits = _apply_fn(model)(params, TOKENS, decoder_inputs, np.ones_like(decoder_inputs))
  return np.asarray(jax.nn.log_softmax(logits, -1))


def _length(row):
  ends = np.flatnonzero(row == model_fixtures.EOS)
  return int(ends[0]) + 1 if len(ends) else len(row)


@pytest.mark.parametrize("name", MIXED_SPECS)
def test_greedy_and_beam_search_follow_teacher_forcing(name):
  model, params = _decoding_setup(name)
  ids = np.asarray(greedy(model, params, TOKENS, DECODE_LENGTH))
  lp = _teacher_forced_log_probs(model, params, ids)
  lengths = [_length(row) for row in ids]
  assert len(set(lengths)) > 1, "premise: the answers end at different steps"
  for b, n in enumerate(lengths):
    np.testing.assert_array_equal(lp[b, :n].argmax(-1), ids[b, :n])
  # One beam, no length penalty: its live beam walks greedy's path, and greedy's
  # answer is among its finished candidates, so it scores at least as high
  # (higher where a shorter EOS-ending candidate won) and equals it elsewhere.
  one, one_scores = beam(model, params, TOKENS, DECODE_LENGTH, 1, 0.0)
  one, one_scores = np.asarray(one)[:, 0], np.asarray(one_scores)[:, 0]
  greedy_scores = np.array([lp[b, np.arange(n), ids[b, :n]].sum()
                            for b, n in enumerate(lengths)])
  assert (one_scores >= greedy_scores - 1e-4).all()
  same = (one == ids).all(-1)
  np.testing.assert_allclose(one_scores[same], greedy_scores[same], atol=1e-4, rtol=0)
  assert same.any()
  beams, scores = beam(model, params, TOKENS, DECODE_LENGTH, 3, 0.6)
  beams, scores = np.asarray(beams), np.asarray(scores)
  for k in range(3):  # row b of the batch teacher-forces its own beam k
    lp = _teacher_forced_log_probs(model, params, beams[:, k])
    for b in range(len(TOKENS)):
      n = _length(beams[b, k])
      want = lp[b, np.arange(n), beams[b, k, :n]].sum() / ((5 + n) / 6) ** 0.6
      np.testing.assert_allclose(scores[b, k], want, atol=1e-4, rtol=0)


def test_the_prefix_changes_what_is_decoded():
  model, params = _decoding_setup("prefix_folded")
  flat = tree.flatten(params)
  shifted = {p: v + 1.0 if "prefix_" in p else v for p, v in flat.items()}
  assert not np.array_equal(
      np.asarray(greedy(model, params, TOKENS, DECODE_LENGTH)),
      np.asarray(greedy(model, tree.unflatten(shifted), TOKENS, DECODE_LENGTH)))


# ------------------------------------------------------------------ prompt banks

def test_deep_prompts_of_a_bank_are_per_example():
  bank = Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(P, num_prompts=2),
                     adapters=AdapterSpec(deep_prompts=True, lora=LoraSpec(2)))
  flat = _random(bank, seed=7)
  assert flat[DEEP_PROMPT_PATH].shape == (2, 1, P, 16)
  ids = np.array([1, 0, 1], np.int32)
  got = np.asarray(jax.jit(lambda p: bank.apply({"params": p}, TOKENS, DECODER_INPUTS,
                                                TARGETS, prompt_ids=ids))(tree.unflatten(flat)))
  single = bank.clone(encoder_prompt=spec_lib.encoder_prompt(P))
  for k in (0, 1):
    one = dict(flat, **{PROMPT_PATH: flat[PROMPT_PATH][k],
                        DEEP_PROMPT_PATH: flat[DEEP_PROMPT_PATH][k]})
    want = _logits(single, one)
    np.testing.assert_allclose(got[ids == k], want[ids == k], atol=1e-5, rtol=0)


# ------------------------------------------------------------------ init at scale

def test_adapter_init_allocates_the_adapter_never_the_model():
  # Wide enough that the full model is ~140 MB of float32; the init keeps
  # only the method params as outputs, so XLA drops the rest as dead code.
  config = get_config("small", num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0)
  model = Transformer(config, adapters=AdapterSpec(lora=LoraSpec(4), ia3=True))
  abstract = adapter_params.abstract_params(model)
  full = sum(4 * int(np.prod(v.shape)) for v in abstract.values())
  paths = tuple(adapter_params.method_paths(model))
  method = sum(4 * int(np.prod(abstract[p].shape)) for p in paths)
  memory = adapter_params.init_fn(model, paths).lower(jax.random.PRNGKey(0)).compile(
      ).memory_analysis()
  assert full > 100e6 and method < full / 200
  assert memory.output_size_in_bytes <= 2 * method
  assert memory.temp_size_in_bytes < 4 * method + (1 << 20), (memory.temp_size_in_bytes, method)


def test_adapter_init_lists_what_the_frozen_tree_gets_wrong():
  model = _model("ia3", prompt=False)
  frozen = tree.flatten(model_fixtures.random_params(Transformer(TINY)))
  del frozen["encoder/layers_1/mlp/wo/kernel"]
  frozen["decoder/decoder_norm/scale"] = np.ones(3, np.float32)
  frozen["encoder/extra/kernel"] = np.ones(2, np.float32)
  with pytest.raises(ValueError, match=r"(?s)missing \(1\): encoder/layers_1/mlp/wo/kernel.*"
                                       r"unexpected \(1\): encoder/extra/kernel.*wrong shape "
                                       r"\(1\): decoder/decoder_norm/scale: \(3,\), expected "
                                       r"\(16,\)"):
    adapter_params.init_adapter_params(model, tree.unflatten(frozen), jax.random.PRNGKey(0))


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("make,match", [
    (lambda: LoraSpec(rank=0), r"LoraSpec: rank=0; expected an int >= 1"),
    (lambda: LoraSpec(rank=-2), r"rank=-2; expected an int >= 1"),
    (lambda: LoraSpec(targets=("q", "value")), r"unknown target 'q'; expected names from"),
    (lambda: LoraSpec(targets=()), r"targets=\(\); expected some of"),
    (lambda: LoraSpec(alpha=0), r"alpha=0; expected a number > 0"),
    (lambda: PrefixSpec(length=0), r"PrefixSpec: length=0; expected an int >= 1"),
    (lambda: PrefixSpec(length=-1), r"length=-1; expected an int >= 1"),
    (lambda: AdapterSpec(), r"AdapterSpec\(\) holds no method"),
])
def test_bad_specs_are_refused_naming_what_was_expected(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_model_level_errors_name_the_model_side():
  with pytest.raises(ValueError, match=r"rank=17 is larger than the query kernel \[16, 16\] "
                                       r"allows; expected rank <= 16"):
    Transformer(TINY, adapters=AdapterSpec(lora=LoraSpec(rank=17)))
  narrow = TINY.replace(head_dim=2)  # value kernel [16, 4]
  with pytest.raises(ValueError, match=r"rank=5 is larger than the value kernel \[16, 4\]"):
    Transformer(narrow, adapters=AdapterSpec(lora=LoraSpec(rank=5, targets=("value",))))
  with pytest.raises(ValueError, match=r"target 'wi' matches no projection of this model "
                                       r"\(mlp_activations=\('gelu', 'linear'\)\); its "
                                       r"projections are \['key', 'out', 'query', 'value', "
                                       r"'wi_0', 'wi_1', 'wo'\]"):
    Transformer(TINY, adapters=AdapterSpec(lora=LoraSpec(targets=("query", "wi"))))
  relu = TINY.replace(mlp_activations=("relu",))
  with pytest.raises(ValueError, match=r"target 'wi_1' matches no projection"):
    Transformer(relu, adapters=AdapterSpec(lora=LoraSpec(targets=("wi_1",))))
  with pytest.raises(ValueError, match=r"deep_prompts needs an encoder prompt joined as a "
                                       r"'prefix'.*found no encoder prompt"):
    Transformer(TINY, adapters=AdapterSpec(deep_prompts=True))
  with pytest.raises(ValueError, match=r"found combine='suffix'"):
    Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(P, combine="suffix"),
                adapters=AdapterSpec(deep_prompts=True))
  with pytest.raises(ValueError, match=r"expected an AdapterSpec or None"):
    Transformer(TINY, adapters=LoraSpec())
  with pytest.raises(ValueError, match=r"merge_lora: the model has no LoRA"):
    adapter_params.merge_lora(_model("ia3"), {})
  with pytest.raises(ValueError, match=r"fold_prefix: the model has no reparameterised prefix"):
    adapter_params.fold_prefix(_model("prefix_folded"), {})
