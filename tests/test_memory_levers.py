"""Memory levers: remat policies, scanned layers, microbatching, bfloat16 frozen weights.

Each lever changes how the step runs, never what it computes: every check is
against the plain layer-by-layer, single-batch, float32 model.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prompt_tuning import losses, paths, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, hf
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.models import (Transformer, get_config, init_params, param_axes,
                                  scan)
from prompt_tuning.models.config import REMAT_POLICIES
from prompt_tuning.prompts import initializers, spec as spec_lib
from prompt_tuning.train import loop, optim, step as step_lib
from prompt_tuning.train.state import TrainState

import model_fixtures

CFG = get_config("tiny", dropout_rate=0.0, num_encoder_layers=3, num_decoder_layers=2)
ENC = spec_lib.encoder_prompt(3)
DEC = spec_lib.decoder_prompt(2)
LEVERS = [(s, r) for s in (False, True) for r in REMAT_POLICIES]


def _model(config, bank: int = 1):
  enc = spec_lib.encoder_prompt(3, num_prompts=bank)
  dec = spec_lib.decoder_prompt(2, num_prompts=bank)
  return Transformer(config, encoder_prompt=enc, decoder_prompt=dec)


@pytest.fixture(scope="module")
def plain():
  model = _model(CFG, bank=2)
  return model, init_params(model, jax.random.PRNGKey(0))


def _batch(batch=4, length=6, targets=5, seed=1):
  rng = np.random.RandomState(seed)
  tokens = rng.randint(1, 64, (batch, length)).astype(np.int32)
  tokens[:, length - 1 - np.arange(batch) % 3] = 0  # ragged padding
  target = rng.randint(1, 64, (batch, targets)).astype(np.int32)
  weights = np.ones_like(target, np.float32)
  for b in range(batch):
    cut = 1 + b % targets
    target[b, cut:], weights[b, cut:] = 0, 0.0
  decoder_inputs = np.concatenate([np.zeros((batch, 1), np.int32), target[:, :-1]], 1)
  return {"encoder_input_tokens": jnp.asarray(tokens),
          "decoder_input_tokens": jnp.asarray(decoder_inputs),
          "decoder_target_tokens": jnp.asarray(target),
          "decoder_loss_weights": jnp.asarray(weights),
          "prompt_ids": jnp.asarray(np.arange(batch) % 2, jnp.int32)}


def _prompt_grads(model, params, batch, cfg=losses.LossConfig(), micro=None):
  trainable, frozen = tree.split(params, "(en|de)coder/prompt/prompt")
  (loss, metrics), grads = _jit_loss_and_grads(model, cfg, micro)(trainable, frozen, batch)
  return loss, metrics, grads


def _jit_loss_and_grads(model, cfg=losses.LossConfig(), micro=None):
  """step.loss_and_grads, jitted as the train step runs it (no dropout rng): one compile
  instead of op-by-op dispatch."""
  return jax.jit(lambda t, f, b: step_lib.loss_and_grads(t, f, b, None, model=model,
                                                         loss_cfg=cfg, num_microbatches=micro))


def _apply(model, params, *args, **kwargs):
  return jax.jit(lambda p, a, k: model.apply({"params": p}, *a, **k))(params, args, kwargs)


@pytest.mark.parametrize("scan_layers,remat", LEVERS)
def test_every_lever_gives_the_plain_logits_and_prompt_gradient(plain, scan_layers, remat):
  model, params = plain
  config = CFG.replace(scan_layers=scan_layers, remat_policy=remat)
  lever = _model(config, bank=2)
  lever_params = scan.to_layout(params, config)
  batch = _batch()
  args = (batch["encoder_input_tokens"], batch["decoder_input_tokens"],
          batch["decoder_target_tokens"])
  ids = batch["prompt_ids"]
  want = _apply(model, params, *args, prompt_ids=ids)
  got = _apply(lever, lever_params, *args, prompt_ids=ids)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  loss, _, grads = _prompt_grads(model, params, batch)
  lever_loss, _, lever_grads = _prompt_grads(lever, lever_params, batch)
  np.testing.assert_allclose(lever_loss, loss, rtol=1e-5)
  for path, g in tree.flatten(grads).items():
    assert np.abs(g).max() > 0, path
    np.testing.assert_allclose(tree.flatten(lever_grads)[path], g, rtol=1e-4, atol=1e-6)


def test_scanned_params_are_stacked_on_axis_1_with_a_layers_axis():
  config = CFG.replace(scan_layers=True)
  model = _model(config)
  params = init_params(model, jax.random.PRNGKey(0))
  flat = tree.flatten(params)
  assert not any("layers_" in p for p in flat)
  d, f, nk = CFG.emb_dim, CFG.mlp_dim, CFG.num_heads * CFG.head_dim
  assert flat["encoder/layers/mlp/wo/kernel"].shape == (f, 3, d)
  assert flat["decoder/layers/self_attention/query/kernel"].shape == (d, 2, nk)
  assert flat["encoder/layers/pre_attention_layer_norm/scale"].shape == (d, 3)
  # Outside the layers nothing moves.
  assert flat["encoder/prompt/prompt"].shape == (3, d)
  assert flat["encoder/relpos_bias/rel_embedding"].shape == (CFG.num_heads, 32)
  axes = tree.flatten(param_axes(model), is_leaf=lambda x: isinstance(x, tuple))
  assert tuple(axes["encoder/layers/mlp/wo/kernel"]) == ("mlp", "layers", "embed")
  assert tuple(axes["token_embedder/embedding"]) == ("vocab", "embed")


def test_stack_and_unstack_are_inverse_and_layer_i_is_index_i(plain):
  _, params = plain
  config = CFG.replace(scan_layers=True)
  stacked = scan.stack_layers(params, config)
  flat, sflat = tree.flatten(params), tree.flatten(stacked)
  np.testing.assert_array_equal(sflat["encoder/layers/mlp/wo/kernel"][:, 2],
                                flat["encoder/layers_2/mlp/wo/kernel"])
  back = tree.flatten(scan.unstack_layers(stacked, config))
  assert sorted(back) == sorted(flat)
  for path, value in flat.items():
    np.testing.assert_array_equal(back[path], value)
  assert scan.to_layout(stacked, CFG).keys() == params.keys()
  assert scan.is_stacked(scan.to_layout(params, config))


def test_stacking_refuses_a_missing_or_extra_layer(plain):
  _, params = plain
  flat = tree.flatten(params)
  del flat["encoder/layers_1/mlp/wo/kernel"]
  with pytest.raises(ValueError, match=r"encoder/layers_1/mlp/wo/kernel is missing"):
    scan.stack_layers(tree.unflatten(flat), CFG.replace(scan_layers=True))
  with pytest.raises(ValueError, match=r"beyond num_encoder_layers=2"):
    scan.stack_layers(params, CFG.replace(scan_layers=True, num_encoder_layers=2))
  stacked = scan.stack_layers(params, CFG.replace(scan_layers=True))
  with pytest.raises(ValueError, match=r"expected the 4 encoder layers on axis 1"):
    scan.unstack_layers(stacked, CFG.replace(num_encoder_layers=4))


@pytest.mark.parametrize("remat", ["none", "full"])
def test_scanned_decoding_and_scoring_equal_the_plain_model(plain, remat):
  model, params = plain
  config = CFG.replace(scan_layers=True, remat_policy=remat)
  lever, lever_params = _model(config, bank=2), scan.to_layout(params, config)
  batch = _batch()
  tokens, ids = batch["encoder_input_tokens"], batch["prompt_ids"]
  greedy = model_fixtures.greedy
  want = greedy(model, params, tokens, max_decode_length=5, prompt_ids=ids)
  got = greedy(lever, lever_params, tokens, max_decode_length=5, prompt_ids=ids)
  np.testing.assert_array_equal(got, want)
  beam = model_fixtures.beam
  want = beam(model, params, tokens, num_beams=3, max_decode_length=4, prompt_ids=ids)
  got = beam(lever, lever_params, tokens, num_beams=3, max_decode_length=4, prompt_ids=ids)
  for w, g in zip(want, got):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
  options = jnp.asarray([[[5, 1, 0], [7, 8, 1]]] * tokens.shape[0], jnp.int32)
  score = model_fixtures.score_options
  want = score(model, params, tokens, options, prompt_ids=ids)
  got = score(lever, lever_params, tokens, options, prompt_ids=ids)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_scanned_decode_cache_is_layers_first():
  config = CFG.replace(scan_layers=True)
  from prompt_tuning.models.t5 import cache_batch_axis, init_cache
  model = _model(config)
  flat = tree.flatten(init_cache(model, batch=3, max_decode_length=4))
  key = flat["decoder/layers/self_attention/cached_key"]
  assert key.shape == (2, 3, 2 + 4, CFG.num_heads, CFG.head_dim)
  assert flat["decoder/layers/self_attention/cache_index"].shape == (2,)
  assert cache_batch_axis(model) == 1 and cache_batch_axis(CFG) == 0


@pytest.mark.parametrize("normalizer", [None, "NUM_REAL_TARGET_TOKENS",
                                        "NUM_TOTAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE",
                                        7.0])
def test_four_microbatches_of_8_give_the_gradient_of_one_batch_of_32(plain, normalizer):
  model, params = plain
  cfg = losses.LossConfig(loss_normalizing_factor=normalizer, label_smoothing=0.1)
  batch = _batch(batch=32, seed=3)
  loss, metrics, grads = _prompt_grads(model, params, batch, cfg)
  m_loss, m_metrics, m_grads = _prompt_grads(model, params, batch, cfg, micro=4)
  np.testing.assert_allclose(m_loss, loss, rtol=1e-5)
  for name in metrics:
    np.testing.assert_allclose(m_metrics[name], metrics[name], rtol=1e-5, err_msg=name)
  for path, g in tree.flatten(grads).items():
    np.testing.assert_allclose(tree.flatten(m_grads)[path], g, rtol=1e-4,
                               atol=1e-5 * np.abs(g).max())
  # Each microbatch normalised on its own would give another gradient (when the
  # factor depends on the batch), so the test can tell.
  if normalizer in ("NUM_REAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE"):
    trainable, frozen = tree.split(params, "(en|de)coder/prompt/prompt")
    grad = jax.jit(jax.grad(lambda t, b: losses.loss_fn(t, frozen, b, None, model=model,
                                                       loss_cfg=cfg)[0]))
    own = sum(grad(trainable, jax.tree.map(lambda x: x[s], batch))["encoder"]["prompt"]["prompt"]
              for s in (slice(0, 8), slice(8, 16), slice(16, 24), slice(24, 32)))
    assert not np.allclose(own, grads["encoder"]["prompt"]["prompt"], rtol=1e-3)


def test_a_microbatched_train_step_makes_the_same_update(plain):
  model, params = plain
  trainable, frozen = tree.split(params, "(en|de)coder/prompt/prompt")
  tx = optim.paper_adafactor()
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(0))
  batch = _batch(batch=8, seed=5)
  outs = []
  for micro in (None, 2, 8):
    step = step_lib.jit_train_step(model, tx, losses.LossConfig(), micro)
    new, metrics = step(jax.tree.map(jnp.copy, state), frozen, batch)
    outs.append((new.trainable, metrics))
  for trained, metrics in outs[1:]:
    np.testing.assert_allclose(metrics["loss"], outs[0][1]["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(outs[0][0])):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_microbatches_must_divide_the_batch():
  with pytest.raises(ValueError, match=r"num_microbatches=3 does not divide the batch of 8"):
    step_lib.check_microbatches(8, 3)
  with pytest.raises(ValueError, match=r"expected None or an int >= 1"):
    step_lib.check_microbatches(8, 0)
  for bad in (True, False, 2.0):
    with pytest.raises(ValueError, match=r"expected None or an int >= 1"):
      step_lib.check_microbatches(8, bad)
  assert step_lib.check_microbatches(8, None) == 1 and step_lib.check_microbatches(8, 4) == 4
  assert step_lib.check_microbatches(8, 1) == 1


def test_an_unknown_remat_policy_is_refused():
  with pytest.raises(ValueError, match=r"remat_policy='some'; expected one of"):
    CFG.replace(remat_policy="some")
  with pytest.raises(ValueError, match=r"scan_layers='yes'; expected True or False"):
    CFG.replace(scan_layers="yes")


def test_bfloat16_frozen_weights_and_remat_stay_near_float32(plain):
  model, params = plain
  batch = _batch(batch=8, seed=7)
  loss, _, grads = _prompt_grads(model, params, batch)
  # Scanned, the layout with the most to get wrong (unscanned bfloat16: test_models_t5.py).
  config = CFG.replace(dtype="bfloat16", remat_policy="full", scan_layers=True)
  lever = _model(config, bank=2)
  lever_params = scan.to_layout(params, config)
  trainable, frozen = tree.split(lever_params, "(en|de)coder/prompt/prompt")
  frozen = frozen_lib.cast_frozen(frozen, "bfloat16")
  assert {x.dtype for x in jax.tree.leaves(frozen)} == {jnp.dtype(jnp.bfloat16)}
  (b_loss, _), b_grads = _jit_loss_and_grads(lever)(trainable, frozen, batch)
  np.testing.assert_allclose(b_loss, loss, rtol=2e-2)
  g, b = grads["encoder"]["prompt"]["prompt"], b_grads["encoder"]["prompt"]["prompt"]
  cosine = np.sum(g * b) / np.linalg.norm(g) / np.linalg.norm(b)
  assert cosine > 0.99, cosine


def test_load_frozen_gives_the_layout_the_config_runs_with(tmp_path):
  config = get_config("tiny")
  params = init_params(config, jax.random.PRNGKey(3))
  hf.save_hf(config, jax.device_get(params), str(tmp_path))
  scanned = config.replace(scan_layers=True, remat_policy="minimal")
  got_config, frozen = frozen_lib.load_frozen(str(tmp_path), scanned, dropout_rate=0.0)
  assert got_config.scan_layers and got_config.remat_policy == "minimal"
  assert scan.is_stacked(frozen)
  flat = tree.flatten(frozen)
  np.testing.assert_array_equal(flat["decoder/layers/mlp/wo/kernel"][:, 1],
                                tree.flatten(params)["decoder/layers_1/mlp/wo/kernel"])
  # And back out: a scanned tree is written layer by layer.
  hf.save_hf(got_config, frozen, str(tmp_path / "again"))
  _, reloaded = frozen_lib.load_frozen(str(tmp_path / "again"))
  for path, value in tree.flatten(params).items():
    np.testing.assert_array_equal(tree.flatten(reloaded)[path], value)


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


def test_a_run_with_every_lever_trains_the_plain_runs_prompt(tmp_path):
  model_dir = paths.demo_model_dir()
  base = frozen_lib.load_frozen(model_dir, dropout_rate=0.0)[0]
  common = dict(mixture_or_task_name="taskless_demo_majority",
                task_feature_lengths={"inputs": 16, "targets": 8}, train_steps=6,
                batch_size=8, initial_checkpoint_path=model_dir, prompt_length=4,
                prompt_init=initializers.sampled_vocab(100), eval_period=0,
                register_tasks=_register, progress=False, log_period=3, dropout_rate=0.0,
                optimizer=optim.paper_adafactor())
  want = loop.train(model_dir=str(tmp_path / "plain"), model_config=base, **common)
  got = loop.train(model_dir=str(tmp_path / "levers"), num_microbatches=4,
                   model_config=base.replace(scan_layers=True, remat_policy="full"),
                   **common)
  np.testing.assert_allclose(np.load(got.prompt_path), np.load(want.prompt_path),
                             rtol=1e-4, atol=1e-5)
  losses_of = lambda r: [x["loss"] for x in r.history if x["kind"] == "train"]
  np.testing.assert_allclose(losses_of(got), losses_of(want), rtol=1e-4)


def _temp_bytes(config) -> int:
  """XLA's plan for the prompt gradient's temporaries (compiled, never run)."""
  model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(8))
  abstract = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))
  tokens = jax.ShapeDtypeStruct((8, 120), jnp.int32)
  targets = jax.ShapeDtypeStruct((8, 8), jnp.int32)

  def grad(params, tokens, targets):
    trainable, frozen = tree.split(params, "encoder/prompt/prompt")
    return jax.grad(lambda t: model.apply({"params": tree.merge(t, frozen)}, tokens,
                                          targets, targets).sum())(trainable)

  compiled = jax.jit(grad).lower(abstract, tokens, targets).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_remat_under_scan_shrinks_xlas_memory_plan():
  config = get_config("tiny", dropout_rate=0.0, emb_dim=64, mlp_dim=256, num_heads=4,
                      head_dim=16, num_encoder_layers=6, num_decoder_layers=2,
                      scan_layers=True)
  plan = {r: _temp_bytes(config.replace(remat_policy=r)) for r in REMAT_POLICIES}
  # Full keeps only each layer's input; the policies keep part of the rest.
  assert plan["full"] < plan["minimal"] < plan["none"], plan
  assert plan["full"] < plan["dots"] < plan["none"], plan
  assert plan["full"] < 0.5 * plan["none"], plan


# Microbatching against a stand-in model whose loss and gradient numpy writes out.
TOY_V = 5  # vocabulary of the stand-in model (microbatching tests below)


class _NoisyBigram:
  """logits[b, t] = emb[decoder_input[b, t]] + w (+ normal(dropout key, [TOY_V]) with dropout)."""

  def apply(self, variables, encoder_tokens, decoder_inputs, decoder_targets, *,
            enable_dropout=False, prompt_ids=None, rngs=None):
    p = variables["params"]
    logits = p["emb"][decoder_inputs] + p["w"].astype(jnp.float32)
    if enable_dropout:
      logits = logits + jax.random.normal(rngs["dropout"], (TOY_V,))
    return logits


def _toy(batch=4, length=3, seed=0, w_dtype=np.float32):
  rng = np.random.RandomState(seed)
  trainable = {"w": jnp.asarray(rng.randn(TOY_V), w_dtype)}
  frozen = {"emb": jnp.asarray(rng.randn(TOY_V, TOY_V), jnp.float32)}
  weights = np.ones((batch, length), np.float32)
  weights[1, 2:] = weights[3, 1:] = 0.0  # ragged padding
  data = {"encoder_input_tokens": jnp.asarray(rng.randint(0, TOY_V, (batch, 2)), jnp.int32),
          "decoder_input_tokens": jnp.asarray(rng.randint(0, TOY_V, (batch, length)), jnp.int32),
          "decoder_target_tokens": jnp.asarray(rng.randint(0, TOY_V, (batch, length)), jnp.int32),
          "decoder_loss_weights": jnp.asarray(weights)}
  return trainable, frozen, data


def _numpy_loss_and_grad(trainable, frozen, batch, noise_per_row):
  """Summed token cross-entropy (no z-loss, no normaliser) and its gradient w.r.t. w."""
  emb, w = np.asarray(frozen["emb"], np.float64), np.asarray(trainable["w"], np.float64)
  logits = emb[np.asarray(batch["decoder_input_tokens"])] + w + noise_per_row[:, None, :]
  targets = np.asarray(batch["decoder_target_tokens"])
  weights = np.asarray(batch["decoder_loss_weights"], np.float64)
  log_z = np.log(np.exp(logits).sum(-1))
  target_logit = np.take_along_axis(logits, targets[..., None], -1)[..., 0]
  loss = np.sum((log_z - target_logit) * weights)
  probs = np.exp(logits - log_z[..., None])
  grad = np.einsum("bt,btv->v", weights, probs - np.eye(TOY_V)[targets])
  return loss, grad


def _dropout_noise(key, micro, rows):
  """[rows, V] noise _NoisyBigram adds: key's unsplit, fold_in(key, m) on slice m of M."""
  if micro is None:
    return np.tile(np.asarray(jax.random.normal(key, (TOY_V,))), (rows, 1))
  return np.repeat([np.asarray(jax.random.normal(jax.random.fold_in(key, m), (TOY_V,)))
                    for m in range(micro)], rows // micro, axis=0)


@pytest.mark.parametrize("micro", [None, 2, 4])
def test_each_microbatch_folds_its_index_into_the_dropout_key(micro):
  """Unsplit, the model gets the step's key; slice m of M gets fold_in(key, m)."""
  trainable, frozen, batch = _toy()
  key = jax.random.PRNGKey(3)
  cfg = losses.LossConfig(z_loss=0.0)
  (loss, metrics), grads = jax.jit(lambda t, f, b, k: step_lib.loss_and_grads(
      t, f, b, k, model=_NoisyBigram(), loss_cfg=cfg, num_microbatches=micro))(
          trainable, frozen, batch, key)
  noise = _dropout_noise(key, micro, rows=len(batch["decoder_loss_weights"]))
  want_loss, want_grad = _numpy_loss_and_grad(trainable, frozen, batch, noise)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["cross_entropy"], want_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["num_tokens"], 9.0)
  np.testing.assert_allclose(grads["w"], want_grad, rtol=1e-4, atol=1e-6)


def test_microbatched_gradients_keep_the_trainable_dtype():
  """bfloat16 trainable params get bfloat16 summed gradients; the loss stays float32."""
  trainable, frozen, batch = _toy(w_dtype=jnp.bfloat16)
  cfg = losses.LossConfig(z_loss=0.0)
  (loss, _), grads = step_lib.loss_and_grads(trainable, frozen, batch, None,
                                             model=_NoisyBigram(), loss_cfg=cfg,
                                             num_microbatches=2)
  assert grads["w"].dtype == jnp.bfloat16 and loss.dtype == jnp.float32
  want_loss, want_grad = _numpy_loss_and_grad(trainable, frozen, batch, np.zeros((4, TOY_V)))
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grads["w"], np.float32), want_grad, rtol=2e-2, atol=2e-2)


def test_loss_and_grads_refuses_microbatches_that_do_not_divide_the_batch():
  trainable, frozen, batch = _toy(batch=4)
  with pytest.raises(ValueError, match=r"num_microbatches=3 does not divide the batch of 4"):
    step_lib.loss_and_grads(trainable, frozen, batch, None, model=_NoisyBigram(),
                            loss_cfg=losses.LossConfig(), num_microbatches=3)


@pytest.mark.parametrize("micro", [None, 2])
def test_a_train_step_hands_its_microbatch_count_and_step_key_to_the_gradient(micro):
  trainable, frozen, batch = _toy()
  state = TrainState.create(trainable, optax.sgd(1.0), jax.random.PRNGKey(5))
  state = state.replace(step=3)
  key = jax.random.fold_in(jax.random.PRNGKey(5), 3)  # the step's dropout key
  noise = _dropout_noise(key, micro, rows=len(batch["decoder_loss_weights"]))
  want_loss, want_grad = _numpy_loss_and_grad(trainable, frozen, batch, noise)
  for step_fn in (lambda s: step_lib.train_step(s, frozen, batch, model=_NoisyBigram(),
                                                tx=optax.sgd(1.0),
                                                loss_cfg=losses.LossConfig(z_loss=0.0),
                                                num_microbatches=micro),
                  lambda s: step_lib.jit_train_step(_NoisyBigram(), optax.sgd(1.0),
                                                    losses.LossConfig(z_loss=0.0),
                                                    micro)(s, frozen, batch)):
    new, metrics = step_fn(jax.tree.map(jnp.copy, state))
    assert int(new.step) == 4
    np.testing.assert_allclose(metrics["loss"], want_loss, rtol=1e-5)
    np.testing.assert_allclose(new.trainable["w"], np.asarray(trainable["w"]) - want_grad,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm"], np.linalg.norm(want_grad), rtol=1e-4)
    np.testing.assert_allclose(metrics["trainable_norm"], np.linalg.norm(new.trainable["w"]),
                               rtol=1e-5)
    np.testing.assert_allclose(metrics["cross_entropy"], want_loss, rtol=1e-5)

