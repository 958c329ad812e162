"""Meshes, logical-axis rules and sharded runs (prompt_tuning.sharding).

pytest's process has one CPU device (tests/conftest.py); what needs several
runs in a subprocess (tests/sharding_workers.py) that sets
XLA_FLAGS=--xla_force_host_platform_device_count=N before jax is imported. The
references are independent of the code under test: one device in this
process, hand-written T5X layouts, one process reading both hosts' rows.
"""
import dataclasses
import fcntl
import json
import os
import socket
import subprocess
import sys

import gin
import jax
import numpy as np
import optax
import pytest
from jax.sharding import AbstractMesh, AxisType, PartitionSpec as P

from prompt_tuning import paths, sharding, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.cli import configurables, flags, train as train_cli
from prompt_tuning.data import inputs
from prompt_tuning.models import Transformer, scan
from prompt_tuning.prompts import export, spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.train import loop, optim

import sharding_workers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "sharding_workers.py")
NAME = export.npy_name(PROMPT_PATH)


def _env(devices: int) -> dict:
  """This process's environment (its XLA flags too), with `devices` fake CPU devices."""
  kept = [f for f in os.environ.get("XLA_FLAGS", "").split()
          if not f.startswith("--xla_force_host_platform_device_count=")]
  return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
          "XLA_FLAGS": " ".join([*kept, f"--xla_force_host_platform_device_count={devices}"])}


def _worker(tmp_path, cases: str, *args: str, devices: int = 8) -> dict:
  """Runs the comma-separated `cases` in one worker process; returns {case: found}
  (also written to tmp_path/CASE_CASE....json)."""
  out = tmp_path / f"{cases.replace(',', '_')}.json"
  done = subprocess.run([sys.executable, WORKER, cases, str(out), *args], env=_env(devices),
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-4000:]
  return json.loads(out.read_text())


def _abstract(data: int, model: int) -> sharding.Partitioning:
  """A mesh of a shape this 1-device process cannot hold, for the checks that need none."""
  return sharding.Partitioning(AbstractMesh((data, model), sharding.MESH_AXES,
                                            axis_types=(AxisType.Auto,) * 2))


def _demo_model():
  config, frozen = frozen_lib.load_frozen(paths.demo_model_dir(), dropout_rate=0.0)
  return Transformer(config, encoder_prompt=spec_lib.encoder_prompt(4)), frozen


# ------------------------------------------------------------------- meshes + rules


def test_mesh_shape_follows_num_partitions_or_mesh_shape():
  assert sharding.mesh_shape(1, None, 8) == (8, 1)
  assert sharding.mesh_shape(4, None, 8) == (2, 4)
  assert sharding.mesh_shape(1, (2, 4), 8) == (2, 4)
  assert sharding.mesh_shape(4, (2, 4), 8) == (2, 4)
  assert sharding.mesh_shape(None, (-1, 2), 8) == (4, 2)
  assert sharding.Partitioning.create().mesh.devices.shape == (1, 1)  # the default here


def test_a_mesh_that_does_not_fit_the_devices_is_refused():
  with pytest.raises(ValueError, match=r"NUM_PARTITIONS=3 does not divide the 8 devices; "
                                       r"expected one of \[1, 2, 4, 8\]"):
    sharding.mesh_shape(3, None, 8)
  with pytest.raises(ValueError, match=r"MESH_SHAPE=\(3, 2\) holds 6 devices; expected "
                                       r"data x model = 8"):
    sharding.mesh_shape(1, (3, 2), 8)
  with pytest.raises(ValueError, match=r"NUM_PARTITIONS=2 and MESH_SHAPE=\(2, 4\) disagree"):
    sharding.mesh_shape(2, (2, 4), 8)
  with pytest.raises(ValueError, match=r"MESH_SHAPE=\(8,\); expected \(data, model\)"):
    sharding.mesh_shape(1, (8,), 8)
  with pytest.raises(ValueError, match=r"MESH_SHAPE=\(-1, 3\): 3 does not divide the 8"):
    sharding.mesh_shape(1, (-1, 3), 8)


def test_the_default_rules_are_t5xs_layout():
  # T5X's standard rules, written out by hand: weights split over `model` along
  # vocab / mlp / heads, the batch over `data`, the prompt everywhere.
  p = sharding.Partitioning.create()
  expected = {("embed", "mlp"): P(None, "model"), ("mlp", "embed"): P("model", None),
              ("embed", "joined_kv"): P(None, "model"), ("joined_kv", "embed"): P("model", None),
              ("vocab", "embed"): P("model", None), ("embed", "vocab"): P(None, "model"),
              ("heads", "relpos_buckets"): P("model", None), ("embed",): P(None),
              ("prompt", "prompt_embed"): P(None, None),
              ("prompt_bank", "prompt", "prompt_embed"): P(None, None, None),
              ("batch", "length", "embed"): P("data", None, None),
              ("batch", "length", "heads", "kv"): P("data", None, "model", None)}
  assert {axes: p.mesh_axes(axes) for axes in expected} == expected
  model, frozen = _demo_model()
  specs = tree.flatten(jax.tree.map(lambda s: s.spec, p.param_shardings(model, frozen)))
  assert specs["encoder/layers_0/mlp/wi_0/kernel"] == P(None, "model")
  assert specs["token_embedder/embedding"] == P("model", None)
  assert specs["decoder/layers_1/self_attention/out/kernel"] == P("model", None)
  assert specs["encoder/encoder_norm/scale"] == P(None)


def test_scanned_layers_keep_the_layer_axis_whole_and_split_the_rest():
  # SCAN_LAYERS stacks each layer's kernel on axis 1 ("layers"): [D, L, F] must
  # be (None, None, model), the same split as one layer's [D, F].
  config, frozen = frozen_lib.load_frozen(paths.demo_model_dir(), dropout_rate=0.0)
  scanned = dataclasses.replace(config, scan_layers=True)
  model = Transformer(scanned, encoder_prompt=spec_lib.encoder_prompt(4))
  stacked = scan.to_layout(frozen, scanned)
  p = sharding.Partitioning.create()
  specs = tree.flatten(jax.tree.map(lambda s: s.spec, p.param_shardings(model, stacked)))
  assert specs["encoder/layers/mlp/wi_0/kernel"] == P(None, None, "model")
  assert specs["decoder/layers/self_attention/out/kernel"] == P("model", None, None)
  assert specs["encoder/layers/pre_attention_layer_norm/scale"] == P(None, None)


def test_the_gin_table_is_the_default_and_every_run_reads_it():
  configurables.register()
  gin.clear_config()
  gin.add_config_file_search_path(paths.config_dir())
  gin.parse_config_files_and_bindings(["runs/demo.gin"], [], finalize_config=False)
  rules = gin.query_parameter("%LOGICAL_AXIS_RULES")
  assert tuple(tuple(r) for r in rules) == sharding.DEFAULT_RULES
  assert sharding.check_rules(rules) == sharding.DEFAULT_RULES
  assert gin.query_parameter("%NUM_PARTITIONS") == 1
  assert gin.query_parameter("%MESH_SHAPE") is None
  for name in ("num_partitions", "mesh_shape", "logical_axis_rules"):
    assert repr(gin.query_parameter(f"loop.train.{name}")) == f"%{name.upper()}"
  gin.clear_config()


def test_rules_naming_unknown_axes_are_refused():
  with pytest.raises(ValueError, match=r"logical axis 'mpl'.*did you mean mlp"):
    sharding.check_rules([("mpl", "model")])
  with pytest.raises(ValueError, match=r"maps 'mlp' to 'tensor'; expected a mesh axis of "
                                       r"\('data', 'model'\)"):
    sharding.check_rules([("mlp", "tensor")])
  with pytest.raises(ValueError, match=r"entry 'mlp'; expected a pair"):
    sharding.check_rules(["mlp"])


def test_a_model_axis_that_does_not_divide_the_model_is_refused():
  model, frozen = _demo_model()  # 4 heads of 16, mlp 128, vocab 128
  sharding_of = _abstract(1, 4)
  assert sharding_of.model_size == 4
  with pytest.raises(ValueError, match=r"heads = 4 \(num_heads; e\.g\. "
                                       r"decoder/relpos_bias/rel_embedding \(4, 32\)\) is "
                                       r"split over 'model' of size 8"):
    _abstract(1, 8).param_shardings(model, frozen)
  with pytest.raises(ValueError) as e:
    _abstract(1, 3).param_shardings(model, frozen)
  for field in ("mlp = 128 (mlp_dim", "vocab = 128 (vocab_size", "heads = 4 (num_heads",
                "joined_kv = 64 (num_heads * head_dim"):
    assert field in str(e.value), str(e.value)
  with pytest.raises(ValueError, match=r"params \['encoder/nope'\] are not the model's"):
    _abstract(1, 1).param_shardings(model, {"encoder": {"nope": np.zeros(3)}})


def test_a_batch_that_does_not_split_over_the_data_axis_is_refused():
  assert _abstract(8, 1).check_batch(16) == 16
  with pytest.raises(ValueError, match=r"BATCH_SIZE=12 does not split over the 8 devices of "
                                       r"the mesh 8 x 1 \(data x model\)'s batch axis; "
                                       r"expected a multiple of 8"):
    _abstract(8, 1).check_batch(12)
  assert _abstract(1, 8).check_batch(12) == 12  # the model axis does not split batches


def test_a_bad_mesh_stops_a_run_before_anything_is_written(tmp_path):
  with pytest.raises(ValueError, match=r"NUM_PARTITIONS=2 does not divide the 1 devices"):
    loop.train(**sharding_workers.train_kwargs(str(tmp_path / "run"), num_partitions=2))
  with pytest.raises(ValueError, match=r"LOGICAL_AXIS_RULES names the logical axis 'bach'"):
    loop.train(**sharding_workers.train_kwargs(str(tmp_path / "run"),
                                               logical_axis_rules=[("bach", "data")]))
  assert not (tmp_path / "run").exists()


def _constraints(jaxpr) -> list:
  """The PartitionSpec of every sharding constraint in a jaxpr, sub-jaxprs included."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "sharding_constraint":
      found.append(eqn.params["sharding"].spec)
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        if hasattr(sub, "jaxpr"):
          found += _constraints(getattr(sub.jaxpr, "jaxpr", sub.jaxpr))
  return found


def test_the_models_activation_constraints_resolve_through_the_rules():
  model, frozen = _demo_model()
  params = frozen_lib.with_prompts(frozen, {PROMPT_PATH: np.zeros((4, 64), np.float32)})
  tokens = np.ones((2, 8), np.int32)
  # A new function each time: jax's trace cache does not see flax's rules.
  trace = lambda: _constraints(jax.make_jaxpr(
      lambda p, t: model.apply({"params": p}, t, t, t))(params, tokens).jaxpr)
  outside = trace()
  partitioning = sharding.Partitioning.create()
  with partitioning.scope():
    inside = trace()
  assert outside == []
  # layers' outputs, mlp hidden, queries, logits: as T5X lays them out.
  for spec in (P("data", None, None), P("data", None, "model"),
               P("data", None, "model", None)):
    assert spec in inside, (spec, set(map(str, inside)))
  swapped = sharding.Partitioning(partitioning.mesh, (("batch", "model"), ("mlp", "data")))
  with swapped.scope():
    other = trace()
  assert P("model", None, "data") in other and P("data", None, "model") not in other


def test_optimizer_moments_are_placed_like_their_params():
  model, frozen = _demo_model()
  p = sharding.Partitioning.create()
  trainable = {"encoder": {"prompt": {"prompt": np.zeros((4, 64), np.float32)},
                           "layers_0": {"mlp": {"wi_0": {"kernel": np.zeros((64, 128),
                                                                            np.float32)}}}}}
  shardings = p.param_shardings(model, trainable)
  # adam: mu and nu like the kernel; adafactor: v like it, its [1] v_row / v_col
  # placeholders replicated; counts replicated.
  for tx, want in ((optax.adam(1e-3), {"0/mu": P(None, "model"), "0/nu": P(None, "model")}),
                   (optim.paper_adafactor(), {"0/v_row": P(), "0/v_col": P(),
                                              "0/v": P(None, "model")})):
    placed = p.like_params(jax.eval_shape(tx.init, trainable), trainable, shardings)
    specs = {jax.tree_util.keystr(k, simple=True, separator="/"): s.spec
             for k, s in jax.tree_util.tree_leaves_with_path(placed)}
    suffix = "/encoder/layers_0/mlp/wi_0/kernel"
    assert {k[:-len(suffix)]: v for k, v in specs.items() if k.endswith(suffix)} == want
    assert {v for k, v in specs.items() if k.endswith("prompt/prompt")} <= {P(None, None), P()}
    assert [v for k, v in specs.items() if k.endswith("count")] == [P()]


def test_each_host_reads_its_own_shard_of_the_stream():
  sharding_workers._register()  # pylint: disable=protected-access
  lengths = sharding_workers.LENGTHS
  read = lambda **kw: next(inputs.train_batches(sharding_workers.TASK, lengths, 4, 0, **kw))
  first, second, again = read(shard_index=0, num_shards=2), read(shard_index=1, num_shards=2), \
      read(shard_index=0, num_shards=2)
  assert first["encoder_input_tokens"].shape == (4, 16)
  assert all(np.array_equal(first[k], again[k]) for k in first)  # deterministic
  assert not np.array_equal(first["encoder_input_tokens"], second["encoder_input_tokens"])
  with pytest.raises(ValueError, match=r"shard_index=2, num_shards=2; expected"):
    read(shard_index=2, num_shards=2)
  one = inputs.fingerprint("t", "train", lengths, 8, 0)
  assert "num_shards" not in one  # one-host runs resume as before
  assert inputs.fingerprint("t", "train", lengths, 8, 0, 2) == {**one, "num_shards": 2}


def test_one_process_holds_every_row_and_the_global_batch_is_its_batch():
  p = sharding.Partitioning.create()
  assert p.data_shard(8) == (0, 1)
  local = {"encoder_input_tokens": np.arange(16, dtype=np.int32).reshape(8, 2)}
  batch = p.global_batch(local, 8)
  np.testing.assert_array_equal(np.asarray(batch["encoder_input_tokens"]),
                                local["encoder_input_tokens"])
  assert batch["encoder_input_tokens"].sharding.spec == P("data")
  with pytest.raises(ValueError, match=r"holds 8 rows; expected BATCH_SIZE / num_shards"):
    p.global_batch(local, 16)


def test_multihost_flags_initialize_only_when_asked_and_complete():
  argv = ["--gin_file=runs/demo.gin"]
  flags.initialize_distributed(flags.parse_flags(argv, multihost=True))  # no-op
  with pytest.raises(ValueError, match=r"--multiprocess_gpu needs --process_count, "
                                       r"--process_index"):
    flags.initialize_distributed(flags.parse_flags(
        argv + ["--multiprocess_gpu", "--coordinator_address=localhost:1234"], multihost=True))
  with pytest.raises(ValueError, match=r"--process_index=2, --process_count=2; expected"):
    flags.initialize_distributed(flags.parse_flags(
        argv + ["--multiprocess_gpu", "--coordinator_address=h:1", "--process_count=2",
                "--process_index=2"], multihost=True))
  with pytest.raises(ValueError, match=r"--process_count given without --multiprocess_gpu"):
    flags.initialize_distributed(flags.parse_flags(argv + ["--process_count=2"],
                                                   multihost=True))
  with pytest.raises(SystemExit):  # eval and infer do not take them
    flags.parse_flags(argv + ["--multiprocess_gpu"])


# ---------------------------------------------------------------- 8 fake devices


EIGHT_DEVICE_CASES = "errors,checkpoints,meshes"


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  """(root, {case: found}): the 8-device cases, run in one worker process under root.

  Once per session: under xdist the first pytest worker to ask runs them, holding a
  lock in the directory the workers share; the other waits, then reads what it wrote.
  """
  if "PYTEST_XDIST_WORKER" not in os.environ:
    root = tmp_path_factory.mktemp("eight_devices")
    return root, _worker(root, EIGHT_DEVICE_CASES, str(root))
  root = tmp_path_factory.getbasetemp().parent / "eight_devices"
  with open(f"{root}.lock", "w", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    out = root / f"{EIGHT_DEVICE_CASES.replace(',', '_')}.json"
    if out.exists():
      return root, json.loads(out.read_text())
    root.mkdir(exist_ok=True)  # a failed first try leaves it, without the JSON
    return root, _worker(root, EIGHT_DEVICE_CASES, str(root))


def test_eight_devices_refuse_a_mesh_that_does_not_fit_the_model_or_batch(eight_devices):
  found = eight_devices[1]["errors"]
  assert "heads = 4 (num_heads" in found["model_8"] and "'model' of size 8" in found["model_8"]
  assert "mlp" not in found["model_8"].split("Expected")[0]  # 128 splits 8 ways
  assert found["batch_12"].startswith("BATCH_SIZE=12 does not split over the 8 devices")
  assert found["mesh_3"].startswith("NUM_PARTITIONS=3 does not divide the 8 devices")
  assert not any(n.startswith(("checkpoint", "config")) for n in found["model_8_wrote"])
  assert found["batch_12_wrote"] == [] and found["mesh_3_wrote"] == []


def test_a_checkpoint_saved_on_one_mesh_restores_on_another(eight_devices):
  root, found = eight_devices[0], eight_devices[1]["checkpoints"]
  for saved_on, restored_on in (("2x4", "8x1"), ("8x1", "2x4")):
    case = found[f"{saved_on}->{restored_on}"]
    kernel = "trainable/encoder/layers_0/mlp/wi_0/kernel"
    moments = [n for n in case["names"] if n.endswith("mu/encoder/layers_0/mlp/wi_0/kernel")]
    assert moments and case["equal"] == case["names"]  # every leaf, bit for bit
    assert set(case["template_differs"]) >= {kernel, "step", moments[0]}  # not the template's
    model_ways = {"2x4": 4, "8x1": 1}
    for where, mesh in (("saved", saved_on), ("restored", restored_on)):
      for name in (kernel, moments[0]):
        assert case[where][name]["spec"] == str(P(None, "model"))
        assert case[where][name]["shards"] == [[64, 128 // model_ways[mesh]]]
        assert case[where][name]["devices"] == 8
      prompt = case[where]["trainable/encoder/prompt/prompt"]
      assert prompt["shards"] == [[4, 64]] and prompt["devices"] == 8
  # ... and on this process's one device, from the same directories.
  for saved_on in ("2x4", "8x1"):
    values = dict(np.load(root / f"values_{saved_on}.npz"))
    one = sharding.Partitioning.create()
    template = sharding_workers._sharded_state(one, scale=0.1)  # pylint: disable=protected-access
    checkpointer = run_dir.Checkpointer(str(root / f"saved_{saved_on}"))
    restored, meta = checkpointer.restore(template)
    checkpointer.close()
    assert meta == {"mesh": saved_on}
    back = run_dir.flatten_state(restored)
    assert sorted(back) == sorted(values)
    for name, value in values.items():
      np.testing.assert_array_equal(back[name], value, err_msg=name)
    assert len(tree.flatten(restored.trainable)[sharding_workers.WI_0].sharding.device_set) == 1


@pytest.mark.slow
def test_data_and_model_parallel_training_equal_one_device(tmp_path, eight_devices):
  meshes = eight_devices[1]["meshes"]
  one = sharding_workers.summary(loop.train(**sharding_workers.train_kwargs(
      str(tmp_path / "one"))))
  assert one["loss"][-1] < 0.5 * one["loss"][0]  # it trained
  for name, ways in (("8x1", 1), ("2x4", 4)):
    run = meshes[name]
    np.testing.assert_allclose(run["loss"], one["loss"], rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(run["prompt"], one["prompt"], rtol=1e-5, atol=1e-5, err_msg=name)
    for ours, ref in zip(run["eval"], one["eval"]):
      assert ours["step"] == ref["step"]
      assert ours[f"{sharding_workers.TASK}/accuracy"] == ref[f"{sharding_workers.TASK}/accuracy"]
      assert ours[f"{sharding_workers.TASK}/loss_per_token"] == pytest.approx(
          ref[f"{sharding_workers.TASK}/loss_per_token"], rel=1e-5)
    seen = run["seen"]
    assert seen["wi_0_spec"] == str(P(None, "model")) and seen["wi_0_devices"] == 8
    assert seen["wi_0_shard_shapes"] == [[64, 128 // ways]]
    assert seen["prompt_replicated"] and seen["prompt_devices"] == 8
    assert seen["batch_spec"] == str(P("data"))
  # The 2 x 4 run stopped at step 3 and resumed: it went on as the one-device run that
  # never stopped (above). (Killing a process mid-run: tests/test_train_loop.py; the
  # state's shardings across a restore onto another mesh:
  # test_a_checkpoint_saved_on_one_mesh_restores_on_another.)
  assert meshes["2x4"]["start_step"] == 3 and meshes["8x1"]["start_step"] == 0
  assert [r["step"] for r in meshes["2x4"]["eval"]] == [0, 3, 6]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_process_reading_both_shards(tmp_path, monkeypatch):
  common = ["--gin.TRAIN_STEPS=6", "--gin.EVAL_PERIOD=3", "--gin.BATCH_SIZE=8",
            "--gin.loop.train.eval_num_examples=16", "--gin.loop.train.checkpoint_period=3",
            "--gin.loop.train.log_period=1", "--gin.MESH_SHAPE=(2, 2)"]
  two, one = tmp_path / "two", tmp_path / "one"
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "prompt_tuning.train", "--gin_file=runs/demo.gin",
       f"--gin.MODEL_DIR='{two}'", *common, "--multiprocess_gpu",
       f"--coordinator_address=localhost:{port}", "--process_count=2", f"--process_index={i}"],
      env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]
  assert f"done: 6 steps in {two}" in outs[0][0] and "done:" not in outs[1][0]  # process 0
  # The reference: this process, on its one device, reading shard 0's then shard 1's rows
  # (equal up to the float rounding a 2 x 2 mesh changes, as in the 8-device runs).
  monkeypatch.setattr(inputs, "train_batches",
                      sharding_workers.reading_both_shards(inputs.train_batches))
  assert train_cli.main(["--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{one}'",
                         *[f for f in common if not f.startswith("--gin.MESH_SHAPE")]]) == 0
  runs = {name: run_dir.read_metrics(str(d)) for name, d in (("two", two), ("one", one))}
  loss = {k: [r["loss"] for r in v if r["kind"] == "train"] for k, v in runs.items()}
  assert len(loss["two"]) == 6
  # The first step sees the same rows: its loss agrees to float precision. After it, the
  # float rounding a 2 x 2 mesh changes is carried along by Adafactor's normalised,
  # lr-sized steps (each moves a prompt entry by ~0.3): 7e-5 of the loss and 5e-4 of a
  # prompt entry by step 6, far below what other rows would change (the loss moves 10-50%).
  np.testing.assert_allclose(loss["two"][0], loss["one"][0], rtol=1e-6)
  np.testing.assert_allclose(loss["two"], loss["one"], rtol=2e-4)
  for step in (3, 6):
    a = np.load(two / "numpy_checkpoints" / f"checkpoint_{step}" / NAME)
    b = np.load(one / "numpy_checkpoints" / f"checkpoint_{step}" / NAME)
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-3)
  evals = {k: [r for r in v if r["kind"] == "eval"] for k, v in runs.items()}
  assert [r["step"] for r in evals["two"]] == [0, 3, 6]
  metric = f"{sharding_workers.TASK}/accuracy"
  assert [r[metric] for r in evals["two"]] == [r[metric] for r in evals["one"]]
  # One writer: a single metrics file with each record once, one TensorBoard event file.
  assert len(os.listdir(two / "train")) == 1
  for step in (3, 6):
    assert (two / f"checkpoint_{step}" / "state").is_dir()
