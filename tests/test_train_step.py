"""Loss, optimizer, train step, trainable split and run checkpoints, on toys with hand-made answers."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prompt_tuning import losses, tree
from prompt_tuning.checkpoints import run_dir
from prompt_tuning.models import Transformer, get_config, init_params
from prompt_tuning.prompts import export, spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.train import optim, step as step_lib, trainable as trainable_lib
from prompt_tuning.train.state import TrainState

def _t5x_adafactor(param, grads, lr=0.3, decay=0.8, offset=0, wd=1e-5, clip=1.0):
  """T5X's unfactored Adafactor (no momentum, no parameter scaling), in numpy."""
  v = np.zeros_like(param)
  for t, g in enumerate(grads):
    beta2 = 1.0 - (t + offset + 1.0) ** -decay
    v = beta2 * v + (1.0 - beta2) * (g * g + 1e-30)
    y = g / np.sqrt(v)
    y = y / max(1.0, np.sqrt(np.mean(y * y)) / clip)
    param = (1.0 - wd) * param - lr * y
  return param


@pytest.mark.parametrize("offset", [0, 1_100_000])
def test_paper_adafactor_matches_t5x_update_rule(offset):
  rng = np.random.RandomState(0)
  param = rng.randn(150, 8).astype(np.float32)  # 150 >= 128 rows: still not factored
  grads = [rng.randn(150, 8).astype(np.float32) * s for s in (1.0, 0.1, 3.0, 0.5)]
  tx = optim.paper_adafactor(step_offset=offset)
  p, state = jnp.asarray(param), tx.init(jnp.asarray(param))
  update = jax.jit(tx.update)
  for g in grads:
    u, state = update(jnp.asarray(g), state, p)
    p = optax.apply_updates(p, u)
  np.testing.assert_allclose(p, _t5x_adafactor(param, grads, offset=offset),
                             rtol=2e-5, atol=2e-6)


def test_step_offset_changes_the_updates():
  param, g = jnp.ones((4, 4)), jnp.linspace(-1.0, 1.0, 16).reshape(4, 4)
  out = []
  for offset in (0, 1_100_000):
    tx = optim.paper_adafactor(step_offset=offset)
    state = tx.init(param)
    for scale in (1.0, 0.1):
      u, state = tx.update(g * scale, state, param)
    out.append(np.asarray(u))
  assert not np.allclose(out[0], out[1])


def test_factored_adafactor_never_factors_the_prompt():
  params = {"encoder": {"prompt": {"prompt": jnp.ones((200, 256))}},
            "decoder": {"logits_dense": {"kernel": jnp.ones((256, 300))}}}
  state = optim.paper_adafactor(factored=True).init(params)
  shapes = {k: v.shape for k, v in run_dir.flatten_state(state).items()}
  assert shapes["inner_states/unfactored/inner_state/0/v/encoder/prompt/prompt"] == (200, 256)
  assert shapes["inner_states/factored/inner_state/0/v_row/decoder/logits_dense/kernel"] == (256,)
  assert shapes["inner_states/factored/inner_state/0/v/decoder/logits_dense/kernel"] == (1,)


def test_split_and_merge_by_regex():
  params = {"encoder": {"prompt": {"prompt": 1}, "encoder_norm": {"scale": 2}},
            "decoder": {"decoder_norm": {"scale": 3}}}
  trainable, frozen = trainable_lib.split(params)
  assert tree.flatten(trainable) == {PROMPT_PATH: 1}
  assert tree.merge(trainable, frozen) == params
  trainable, _ = trainable_lib.split(params, r".*_norm/scale")
  assert sorted(tree.flatten(trainable)) == ["decoder/decoder_norm/scale",
                                                  "encoder/encoder_norm/scale"]
  with pytest.raises(ValueError, match="matches no parameter"):
    trainable_lib.split(params, "encoder/prompt")  # fullmatch: a prefix is not enough


MODEL = Transformer(get_config("tiny", dropout_rate=0.5),
                    encoder_prompt=spec_lib.encoder_prompt(3))


def _toy_step():
  params = init_params(MODEL, jax.random.PRNGKey(0))
  trainable, frozen = trainable_lib.split(params)
  tx = optim.paper_adafactor()
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(1))
  rng = np.random.RandomState(0)
  targets = rng.randint(2, 64, (2, 4)).astype(np.int32)
  batch = {"encoder_input_tokens": rng.randint(2, 64, (2, 5)).astype(np.int32),
           "decoder_target_tokens": targets,
           "decoder_input_tokens": np.pad(targets[:, :-1], [(0, 0), (1, 0)]),
           "decoder_loss_weights": np.ones((2, 4), np.int32)}
  return state, frozen, batch, step_lib.jit_train_step(MODEL, tx, losses.LossConfig())


def test_train_step_is_deterministic_and_folds_the_step_into_the_dropout_key():
  state, frozen, batch, train_step = _toy_step()
  copy = lambda s: jax.tree.map(jnp.array, s)  # the step donates its state argument
  a, ma = train_step(copy(state), frozen, batch)
  b, mb = train_step(copy(state), frozen, batch)
  assert int(a.step) == 1 and float(ma["loss"]) == float(mb["loss"])
  np.testing.assert_array_equal(a.trainable["encoder"]["prompt"]["prompt"],
                                b.trainable["encoder"]["prompt"]["prompt"])
  assert not np.array_equal(a.trainable["encoder"]["prompt"]["prompt"],
                            state.trainable["encoder"]["prompt"]["prompt"])
  # Same params and batch at another step number: another dropout mask, another loss.
  _, mc = train_step(copy(state).replace(step=jnp.asarray(5, jnp.int32)), frozen, batch)
  assert float(mc["loss"]) != float(ma["loss"])


def test_gradient_is_taken_for_the_trainable_subtree_only():
  state, frozen, batch, _ = _toy_step()
  jaxpr = jax.make_jaxpr(jax.grad(lambda t: losses.loss_fn(
      t, frozen, batch, None, model=MODEL,
      loss_cfg=losses.LossConfig())[0]))(state.trainable)
  out_shapes = [v.aval.shape for v in jaxpr.jaxpr.outvars]
  assert out_shapes == [(3, 16)]  # one gradient: the [P, D] prompt


def _state(prompt_length=3):
  trainable = {"encoder": {"prompt": {"prompt": jnp.arange(prompt_length * 4.0).reshape(
      prompt_length, 4)}}}
  return TrainState.create(trainable, optim.paper_adafactor(), jax.random.PRNGKey(7))


def test_checkpoint_round_trip_keep_policy_and_npy_export(tmp_path):
  ckpt = run_dir.Checkpointer(str(tmp_path), keep=2)
  state = _state()
  for step in (1, 2, 3):
    ckpt.save(step, state.replace(step=jnp.asarray(step, jnp.int32)), {"step": step})
  assert ckpt.all_steps() == [2, 3]
  restored, meta = ckpt.restore(_state())
  assert meta == {"step": 3} and int(restored.step) == 3
  for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(state)):
    if np.shape(a):
      np.testing.assert_array_equal(a, b)
  name = export.npy_name(PROMPT_PATH)
  for step in (1, 2, 3):  # the small .npy exports are all kept
    np.testing.assert_array_equal(
        np.load(tmp_path / "numpy_checkpoints" / f"checkpoint_{step}" / name),
        state.trainable["encoder"]["prompt"]["prompt"])
  ckpt.close()
  with pytest.raises(ValueError, match=r"prompt/prompt: \(3, 4\), expected \(5, 4\)"):
    run_dir.Checkpointer(str(tmp_path), keep=2).restore(_state(5))


def test_best_prompt_swap_is_atomic_and_recovers(tmp_path):
  ckpt = run_dir.Checkpointer(str(tmp_path))
  ckpt.save_best(_state().trainable, {"step": 10, "value": 50.0})
  ckpt.save_best(_state().trainable, {"step": 20, "value": 60.0})
  assert ckpt.load_best()["step"] == 20
  assert sorted(os.listdir(tmp_path / "best")) == ["best.json", export.npy_name(PROMPT_PATH)]
  # A kill between the two renames leaves only best.old: the next run restores it.
  os.replace(tmp_path / "best", tmp_path / "best.old")
  assert json.loads((tmp_path / "best.old" / "best.json").read_text())["step"] == 20
  assert run_dir.Checkpointer(str(tmp_path)).load_best()["step"] == 20


def test_paper_adafactor_keeps_the_whole_second_moment_of_a_large_prompt_by_default():
  # 150 x 200: both dims >= 128, which optax's own default (factored=True) would factor.
  params = {"encoder": {"prompt": {"prompt": jnp.ones((150, 200))}}}
  shapes = {k: v.shape for k, v in run_dir.flatten_state(
      optim.paper_adafactor().init(params)).items()}
  assert shapes["0/v/encoder/prompt/prompt"] == (150, 200), shapes
  assert shapes["0/v_row/encoder/prompt/prompt"] == (1,), shapes  # optax's placeholder


def test_jit_train_step_places_its_arrays_as_the_shardings_given_and_donates_the_state():
  # One device: a NamedSharding over a 1-device mesh differs from the SingleDeviceSharding
  # jax picks by itself, so the compiled step shows whether the shardings reached jax.jit.
  state, frozen, batch, _ = _toy_step()
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  named = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  every = lambda t: jax.tree.map(lambda _: named, t)
  in_sh = (every(state), every(frozen), every(batch))
  # The new state's arrays split over "data" (a 1-device split): not what jax would
  # propagate from replicated inputs.
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  out_sh = (jax.tree.map(lambda x: split if np.ndim(x) else named, state), named)
  given = step_lib.jit_train_step(MODEL, optim.paper_adafactor(), losses.LossConfig(),
                                  in_shardings=in_sh, out_shardings=out_sh)
  compiled = given.lower(state, frozen, batch).compile()
  ins = jax.tree_util.tree_leaves(compiled.input_shardings)
  outs = jax.tree_util.tree_leaves(compiled.output_shardings)
  assert ins and all(isinstance(s, jax.sharding.NamedSharding) for s in ins), ins
  assert outs and all(isinstance(s, jax.sharding.NamedSharding) for s in outs), outs
  prompt_out = compiled.output_shardings[0].trainable["encoder"]["prompt"]["prompt"]
  assert prompt_out.spec == jax.sharding.PartitionSpec("data"), prompt_out
  donated = jax.tree.map(jnp.copy, state)
  new, _ = compiled(donated, frozen, batch)
  assert donated.trainable["encoder"]["prompt"]["prompt"].is_deleted()  # donated to `new`
  # Without shardings jax places everything itself: nothing is a NamedSharding.
  plain = step_lib.jit_train_step(MODEL, optim.paper_adafactor(), losses.LossConfig())
  compiled = plain.lower(state, frozen, batch).compile()
  placed = jax.tree_util.tree_leaves((compiled.input_shardings, compiled.output_shardings))
  assert placed and not any(isinstance(s, jax.sharding.NamedSharding) for s in placed), placed
  plain_new, _ = compiled(jax.tree.map(jnp.copy, state), frozen, batch)
  np.testing.assert_allclose(new.trainable["encoder"]["prompt"]["prompt"],
                             plain_new.trainable["encoder"]["prompt"]["prompt"], rtol=1e-6)
