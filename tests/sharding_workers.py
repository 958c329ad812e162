"""What tests/test_sharding.py runs in subprocesses that see several (fake CPU) devices.

`python tests/sharding_workers.py CASE[,CASE...] OUT_JSON ARGS...`; the parent sets
XLA_FLAGS=--xla_force_host_platform_device_count=N in the environment, so jax
sees N devices from its first import (tests/conftest.py gives pytest's own
process one). OUT_JSON holds {case: what it measured}; several cases share one
process (one jax start, one demo-model load), each with the same ARGS. The parent
shares its helpers: the run it compares against (`train_kwargs`, `summary`), the state
it restores (`_sharded_state`), one process reading both hosts' rows
(`reading_both_shards`).
"""
import json
import os
import sys

import jax
import numpy as np
import optax

from prompt_tuning import paths, sharding, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.models import Transformer
from prompt_tuning.prompts import initializers, spec as spec_lib
from prompt_tuning.train import loop, optim, step as step_lib
from prompt_tuning.train.state import TrainState

TASK = "taskless_demo_majority"
LENGTHS = {"inputs": 16, "targets": 8}
WI_0 = "encoder/layers_0/mlp/wi_0/kernel"


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


def train_kwargs(model_dir: str, **overrides) -> dict:
  """The small demo run every mesh trains (the parent runs it on one device)."""
  kwargs = dict(model_dir=model_dir, mixture_or_task_name=TASK, task_feature_lengths=LENGTHS,
                train_steps=6, batch_size=16, initial_checkpoint_path=paths.demo_model_dir(),
                prompt_length=4, prompt_init=initializers.sampled_vocab(100), eval_period=3,
                eval_num_examples=16, register_tasks=_register, progress=False, log_period=1,
                optimizer=optim.paper_adafactor())
  kwargs.update(overrides)
  return kwargs


def summary(result) -> dict:
  return {"loss": [r["loss"] for r in result.history if r["kind"] == "train"],
          "eval": [r for r in result.history if r["kind"] == "eval"],
          "prompt": np.load(result.prompt_path).tolist(), "prompt_path": result.prompt_path}


def _spy_on_the_train_step(seen: dict):
  """Records the shardings of what the loop really hands its jitted step; returns an undo."""
  real = step_lib.jit_train_step

  def spy(*args, **kwargs):
    step = real(*args, **kwargs)

    def call(state, frozen, batch):
      kernel = tree.flatten(frozen)[WI_0]
      prompt = tree.flatten(state.trainable)["encoder/prompt/prompt"]
      seen.setdefault("wi_0_spec", str(kernel.sharding.spec))
      seen.setdefault("wi_0_shard_shapes",
                      sorted({s.data.shape for s in kernel.addressable_shards}))
      seen.setdefault("wi_0_devices", len(kernel.sharding.device_set))
      seen.setdefault("prompt_replicated", bool(prompt.sharding.is_fully_replicated))
      seen.setdefault("prompt_devices", len(prompt.sharding.device_set))
      seen.setdefault("batch_spec", str(batch["encoder_input_tokens"].sharding.spec))
      return step(state, frozen, batch)
    return call
  step_lib.jit_train_step = spy
  return lambda: setattr(step_lib, "jit_train_step", real)


def case_meshes(out: str, root: str) -> dict:
  """Trains the demo run on 8 x 1, and on 2 x 4 in two calls (3 steps, then the same
  command to 6 resumes from checkpoint_3: the sharded prompt, Adafactor's factors, step,
  rng and the data position); records results and shardings."""
  results = {}
  for shape, steps in (((8, 1), (6,)), ((2, 4), (3, 6))):
    seen: dict = {}
    undo = _spy_on_the_train_step(seen)
    name = f"{shape[0]}x{shape[1]}"
    try:
      for train_steps in steps:
        result = loop.train(**train_kwargs(os.path.join(root, name), mesh_shape=shape,
                                           train_steps=train_steps))
    finally:
      undo()
    results[name] = {**summary(result), "seen": seen, "start_step": result.start_step}
  return results


def case_errors(out: str, root: str) -> dict:
  """Bad meshes and batches on 8 real devices: the messages, and nothing written."""
  messages = {}
  for name, kwargs in (("model_8", dict(num_partitions=8)),
                       ("batch_12", dict(batch_size=12)),
                       ("mesh_3", dict(num_partitions=3))):
    try:
      loop.train(**train_kwargs(os.path.join(root, name), **kwargs))
    except ValueError as e:
      messages[name] = str(e)
    messages[name + "_wrote"] = sorted(os.listdir(os.path.join(root, name))) \
        if os.path.isdir(os.path.join(root, name)) else []
  return messages


def _sharded_state(partitioning, scale: float):
  """A train state whose trainable part holds the prompt and a model-split wi_0 kernel."""
  config, frozen = frozen_lib.load_frozen(paths.demo_model_dir())
  model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(4))
  rng = np.random.RandomState(0)
  trainable = tree.unflatten({
      "encoder/prompt/prompt": rng.uniform(-scale, scale, (4, 64)).astype(np.float32),
      WI_0: tree.flatten(frozen)[WI_0] * scale})
  tx = optax.adam(1e-3)
  shardings = partitioning.param_shardings(model, trainable)
  create = lambda t, r: TrainState.create(t, tx, r)
  state_shardings = partitioning.like_params(
      jax.eval_shape(create, trainable, jax.random.PRNGKey(3)), trainable, shardings)
  state = jax.jit(create, out_shardings=state_shardings)(
      partitioning.put(trainable, shardings),
      partitioning.put(jax.random.PRNGKey(3), partitioning.replicated))
  # Moments that differ from zero, so a restore that dropped them would show.
  grads = jax.tree.map(lambda x: x * 0.5 + 0.25, state.trainable)
  updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
  state = state.replace(step=state.step + int(20 * scale), opt_state=opt_state,
                        trainable=optax.apply_updates(state.trainable, updates))
  return partitioning.put(state, state_shardings)  # eager ops may have moved leaves


def _describe(state) -> dict:
  leaves = run_dir._named_leaves(state)  # pylint: disable=protected-access
  return {name: {"spec": str(getattr(leaf.sharding, "spec", None)),
                 "shards": sorted({s.data.shape for s in leaf.addressable_shards}),
                 "devices": len(leaf.sharding.device_set)}
          for name, leaf in leaves.items() if isinstance(leaf, jax.Array)}


def case_checkpoints(out: str, root: str) -> dict:
  """Saves on 2 x 4 and on 8 x 1, restores each onto the other mesh."""
  meshes = {"2x4": sharding.Partitioning.create(mesh_shape=(2, 4)),
            "8x1": sharding.Partitioning.create(mesh_shape=(8, 1))}
  report = {}
  for saved_on, restored_on in (("2x4", "8x1"), ("8x1", "2x4")):
    state = _sharded_state(meshes[saved_on], scale=0.5)
    directory = os.path.join(root, f"saved_{saved_on}")
    checkpointer = run_dir.Checkpointer(directory)
    checkpointer.save(7, state, {"mesh": saved_on})
    checkpointer.close()
    np.savez(os.path.join(root, f"values_{saved_on}.npz"), **run_dir.flatten_state(state))
    template = _sharded_state(meshes[restored_on], scale=0.1)  # other values, target mesh
    checkpointer = run_dir.Checkpointer(directory)
    restored, meta = checkpointer.restore(template)
    checkpointer.close()
    saved, back = run_dir.flatten_state(state), run_dir.flatten_state(restored)
    report[f"{saved_on}->{restored_on}"] = {
        "saved": _describe(state), "restored": _describe(restored), "meta": meta,
        "equal": sorted(k for k in saved if np.array_equal(saved[k], back[k])),
        "names": sorted(saved), "template_differs": sorted(
            k for k in saved if not np.array_equal(saved[k], run_dir.flatten_state(template)[k]))}
  return report


def reading_both_shards(real):
  """`inputs.train_batches` for one process reading what two hosts read: shard 0's rows,
  then shard 1's, per batch (`real`: the function it wraps)."""

  def two_shards(name, lengths, batch_size, seed, start_batch=0, shard_index=0,
                 num_shards=1, **kwargs):
    assert (shard_index, num_shards) == (0, 1), (shard_index, num_shards)
    halves = [real(name, lengths, batch_size // 2, seed, start_batch=start_batch,
                   shard_index=i, num_shards=2, **kwargs) for i in range(2)]
    for first, second in zip(*halves):
      yield {k: np.concatenate([first[k], second[k]]) for k in first}
  return two_shards


if __name__ == "__main__":
  cases, out_path, *rest = sys.argv[1:]
  found = {case: globals()[f"case_{case}"](out_path, *rest) for case in cases.split(",")}
  with open(out_path, "w", encoding="utf-8") as f:
    json.dump(found, f, default=str)
