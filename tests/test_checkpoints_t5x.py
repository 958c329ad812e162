"""T5X checkpoints (legacy msgpack + tensorstore, and Orbax) read back exactly.

The checkpoints are written by `t5x_fixtures` in T5X's own on-disk layout,
optimizer state included, then read with `checkpoints.load`.
"""
import copy
import os
import re
import shutil

import jax
import numpy as np
import pytest
from flax import serialization

from prompt_tuning import checkpoints
from prompt_tuning import tree
from prompt_tuning.checkpoints import t5x, validation
from prompt_tuning.models import T5Config, get_config
from prompt_tuning.prompts import export
from prompt_tuning.prompts.spec import PROMPT_PATH, REFERENCE_PROMPT_PATH

import t5x_fixtures as fx

# 3 decoder vs 2 encoder layers, so the derived counts cannot be swapped.
CONFIG = get_config("tiny", dropout_rate=0.0, num_decoder_layers=3)
TIED = CONFIG.replace(mlp_activations=("relu",), logits_via_embedding=True)


def _assert_same_params(expected, found):
  expected, found = tree.flatten(expected), tree.flatten(found)
  assert sorted(found) == sorted(expected)
  for path in expected:
    assert found[path].dtype == np.float32, path
    np.testing.assert_array_equal(found[path], expected[path], err_msg=path)


def _leaves(node, prefix=""):
  """{dotted path: leaf} of a decoded msgpack tree; a dict with a "driver" key
  (a tensorstore spec, as T5X writes them) is a leaf. Written here, not taken
  from the loader, so the layout check does not trust the code it checks."""
  if isinstance(node, dict) and "driver" not in node:
    out = {}
    for key, value in node.items():
      out.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
    return out
  return {prefix: node}


def _leaf_kinds(step_dir):
  """Counts target / optimizer-state leaves stored inline vs as tensorstore specs."""
  with open(os.path.join(step_dir, "checkpoint"), "rb") as f:
    contents = serialization.msgpack_restore(f.read())
  assert contents["version"] == fx.T5X_VERSION
  counts = {}
  for part in ("target", "state"):
    flat = _leaves(contents["optimizer"][part])
    specs = sum(isinstance(v, dict) for v in flat.values())
    counts[part] = (len(flat) - specs, specs)
  return counts


def test_tensorstore_leaves_are_zarr_arrays_relative_to_the_step_dir(legacy):
  # Read the written arrays with tensorstore alone: the spec's kvstore path is
  # the dotted leaf path, relative to the step directory (T5X's layout).
  import tensorstore as ts  # pylint: disable=import-outside-toplevel
  _, params, _, step_dir = legacy
  with open(os.path.join(step_dir, "checkpoint"), "rb") as f:
    target = _leaves(serialization.msgpack_restore(f.read())["optimizer"]["target"])
  flat = {k.replace(".", "/"): v for k, v in target.items()}
  stored = [k for k, v in flat.items() if isinstance(v, dict)]
  assert stored
  for path in stored:
    spec = flat[path]
    assert spec["driver"] == "zarr"
    assert spec["kvstore"]["path"].rstrip("/") == "target." + path.replace("/", ".")
    array = ts.open({"driver": "zarr", "kvstore": {
        "driver": "file", "path": os.path.join(step_dir, spec["kvstore"]["path"])}}).result()
    np.testing.assert_array_equal(array.read().result(), tree.flatten(params)[path],
                                  err_msg=path)


@pytest.fixture(scope="module", params=["t5_1_1", "t5_1_0"])
def legacy(request, tmp_path_factory):
  config = CONFIG if request.param == "t5_1_1" else TIED
  params = fx.random_params(config, seed=1)
  model_dir = str(tmp_path_factory.mktemp(f"legacy_{request.param}"))
  step_dir = fx.write_legacy_checkpoint(model_dir, 1000, params)
  return config, params, model_dir, step_dir


def test_fixture_writes_t5x_layout(legacy):
  _, _, _, step_dir = legacy
  assert os.path.isdir(os.path.join(step_dir, "target.encoder.layers_0.attention.query.kernel"))
  assert os.path.isdir(os.path.join(
      step_dir, "state.param_states.token_embedder.embedding.v_row"))
  (target_inline, target_ts), (state_inline, state_ts) = _leaf_kinds(step_dir).values()
  assert target_inline > 0 and target_ts > 0  # a real mix in the params ...
  assert state_inline > 0 and state_ts > 0    # ... and in the optimizer state


def test_legacy_loads_exactly_with_derived_config(legacy):
  config, params, model_dir, step_dir = legacy
  for path in (model_dir, step_dir, os.path.join(step_dir, "checkpoint")):
    loaded_config, loaded = checkpoints.load(path)
    assert loaded_config == config.replace(dropout_rate=0.1)  # dropout: T5Config default
    _assert_same_params(params, loaded)


def test_legacy_arrays_are_opened_read_only(legacy, monkeypatch):
  # A reader must never be able to write a pretrained checkpoint (run as root, a
  # read-write open of a read-only file succeeds, so the mode itself is checked).
  import tensorstore  # pylint: disable=import-outside-toplevel
  opened, real_open = [], tensorstore.open

  def recording_open(*args, **kwargs):
    future = real_open(*args, **kwargs)
    opened.append(future)
    return future
  monkeypatch.setattr(tensorstore, "open", recording_open)
  _, params, model_dir, _ = legacy
  _assert_same_params(params, checkpoints.load(model_dir)[1])
  assert opened and {f.result().mode for f in opened} == {"r"}


def test_legacy_logits_equal_those_of_the_written_params(legacy):
  config, params, model_dir, _ = legacy
  _, loaded = checkpoints.load(model_dir, config=config)
  batch = fx.padded_batch()
  want = fx.logits(config, params, *batch)
  got = fx.logits(config, loaded, *batch)
  assert np.abs(want).max() > 0.1  # not a degenerate all-zero model
  np.testing.assert_array_equal(got, want)


def test_legacy_bfloat16_restore(legacy):
  config, params, model_dir, _ = legacy
  _, half = checkpoints.load(model_dir, dtype="bfloat16")
  flat = tree.flatten(half)
  assert {str(v.dtype) for v in flat.values()} == {"bfloat16"}
  for path, value in tree.flatten(params).items():
    np.testing.assert_array_equal(flat[path], value.astype(flat[path].dtype), err_msg=path)
  batch = fx.padded_batch()
  want = fx.logits(config, params, *batch)
  got = fx.logits(config.replace(dtype="bfloat16"), half, *batch)
  # bfloat16 keeps 8 mantissa bits: ~1e-2 relative per op; two layers deep.
  assert np.abs(got - want).max() < 0.1 * max(1.0, np.abs(want).max())
  assert np.abs(got - want).max() > 0  # it really computed in bfloat16


def test_bfloat16_saved_checkpoint_restores_as_float32(tmp_path):
  params = fx.random_params(CONFIG, seed=2)
  fx.write_legacy_checkpoint(str(tmp_path), 7, params, save_dtype="bfloat16")
  _, loaded = checkpoints.load(str(tmp_path))
  for path, value in tree.flatten(params).items():
    got = tree.flatten(loaded)[path]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, value.astype("bfloat16").astype(np.float32), err_msg=path)


def test_model_dir_resolves_to_the_latest_step(tmp_path):
  old, new = fx.random_params(CONFIG, seed=3), fx.random_params(CONFIG, seed=4)
  fx.write_legacy_checkpoint(str(tmp_path), 900, old)
  fx.write_legacy_checkpoint(str(tmp_path), 10000, new)  # 10000 > 900 numerically
  os.makedirs(tmp_path / "checkpoint_20000.tmp-123")   # an unfinished save is ignored
  fmt, where = checkpoints.detect_format(str(tmp_path))
  assert (fmt, where) == (checkpoints.T5X_LEGACY,
                          os.path.join(str(tmp_path), "checkpoint_10000", "checkpoint"))
  _assert_same_params(new, checkpoints.load(str(tmp_path))[1])


def test_optimizer_state_is_not_read(tmp_path):
  params = fx.random_params(CONFIG, seed=5)
  step_dir = fx.write_legacy_checkpoint(str(tmp_path), 1, params)
  for name in os.listdir(step_dir):
    if name.startswith("state."):
      shutil.rmtree(os.path.join(step_dir, name))
  _assert_same_params(params, checkpoints.load(step_dir)[1])


def test_reference_prompt_path_is_mapped(tmp_path):
  params = tree.flatten(fx.random_params(CONFIG, seed=6))
  prompt = np.random.default_rng(0).uniform(-0.5, 0.5, (5, 16)).astype(np.float32)
  params[REFERENCE_PROMPT_PATH] = prompt
  fx.write_legacy_checkpoint(str(tmp_path), 1, tree.unflatten(params))
  config, loaded = checkpoints.load(str(tmp_path))
  assert config == CONFIG.replace(dropout_rate=0.1)  # the prompt is not architecture
  flat = tree.flatten(loaded)
  assert REFERENCE_PROMPT_PATH not in flat
  np.testing.assert_array_equal(flat[PROMPT_PATH], prompt)
  # The prompt's spec is read off its shape.
  spec = export.prompt_specs(flat)["encoder"]
  assert (spec.path, spec.length, spec.num_prompts) == (PROMPT_PATH, 5, 1)
  assert checkpoints.load(str(tmp_path), config=CONFIG)[0] == CONFIG


def test_a_stored_prompt_of_the_wrong_width_is_refused(tmp_path):
  params = tree.flatten(fx.random_params(CONFIG, seed=6))
  params[PROMPT_PATH] = np.zeros((5, 8), np.float32)
  fx.write_legacy_checkpoint(str(tmp_path), 1, tree.unflatten(params))
  with pytest.raises(ValueError, match=r"encoder/prompt/prompt has shape \(5, 8\); expected "
                                       r"a \[P, d_model=16\] prompt"):
    checkpoints.load(str(tmp_path))


def test_a_pretrained_checkpoint_holds_no_prompt_and_none_is_invented(legacy):
  config, params, model_dir, _ = legacy
  loaded_config, loaded = checkpoints.load(model_dir, config=config)
  assert loaded_config == config
  _assert_same_params(params, loaded)
  assert not export.prompt_specs(tree.flatten(loaded))


def test_orbax_t5x_checkpoint(tmp_path):
  params = fx.random_params(CONFIG, seed=7)
  step_dir = fx.write_orbax_checkpoint(str(tmp_path), 300, params)
  assert os.path.exists(os.path.join(step_dir, "state", "_METADATA"))
  for path in (str(tmp_path), step_dir, os.path.join(step_dir, "state")):
    fmt, where = checkpoints.detect_format(path)
    assert (fmt, where) == (checkpoints.ORBAX, os.path.join(step_dir, "state"))
  config, loaded = checkpoints.load(str(tmp_path))
  assert config == CONFIG.replace(dropout_rate=0.1)
  _assert_same_params(params, loaded)
  _, half = checkpoints.load(str(tmp_path), dtype="bfloat16")
  for path, value in tree.flatten(params).items():
    got = tree.flatten(half)[path]
    assert str(got.dtype) == "bfloat16"
    np.testing.assert_array_equal(got, value.astype(got.dtype), err_msg=path)


def test_spec_paths_follow_the_checkpoint_to_gcs_and_back():
  spec = {"driver": "zarr", "dtype": "float32",
          "kvstore": {"driver": "file", "path": "target.encoder.encoder_norm.scale"},
          "metadata": {"shape": [16], "chunks": [16], "compressor": {"id": "gzip"}}}
  gcs = t5x.absolute_spec(spec, "gs://bucket/models/t5/checkpoint_5")
  assert gcs["kvstore"] == {"driver": "gcs", "bucket": "bucket",
                            "path": "models/t5/checkpoint_5/target.encoder.encoder_norm.scale"}
  assert gcs["metadata"] == {"shape": [16]}
  written_on_gcs = dict(spec, kvstore={"driver": "gcs", "bucket": "t5x-dummy-bucket",
                                       "path": "target.x"})
  local = t5x.absolute_spec(written_on_gcs, "/ckpt/checkpoint_5")
  assert local["kvstore"] == {"driver": "file", "path": "/ckpt/checkpoint_5/target.x"}
  old = {"driver": "zarr", "path": "target.y", "kvstore": {"driver": "file"},
         "metadata": {"shape": [2]}}  # tensorstore < 0.1.14 layout
  assert t5x.absolute_spec(old, "/c")["kvstore"] == {"driver": "file", "path": "/c/target.y"}
  assert spec["kvstore"]["path"] == "target.encoder.encoder_norm.scale"  # input untouched


# ------------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
  missing = str(tmp_path / "no_such_checkpoint")
  with pytest.raises(FileNotFoundError, match=f"{missing}: no such file or directory"):
    checkpoints.load(missing)


def test_directory_without_a_checkpoint(tmp_path):
  (tmp_path / "notes.txt").write_text("hello")
  with pytest.raises(ValueError, match=r"no recognised checkpoint; expected .*"
                                       r"found \[notes\.txt\]"):
    checkpoints.load(str(tmp_path))


def test_garbage_checkpoint_file(tmp_path):
  (tmp_path / "checkpoint").write_bytes(b"\xc1 not msgpack")
  with pytest.raises(ValueError, match="cannot decode as a msgpack T5X checkpoint"):
    checkpoints.load(str(tmp_path))


def test_msgpack_without_target(tmp_path):
  (tmp_path / "checkpoint").write_bytes(serialization.msgpack_serialize(
      {"version": 3, "optimizer": {"state": {"step": np.int32(1)}}}))
  with pytest.raises(ValueError, match=r"no 'target' \(params\).*found \['state'\]"):
    checkpoints.load(str(tmp_path))


def _write_edited(tmp_path, edit, config=CONFIG):
  flat = tree.flatten(fx.random_params(config, seed=8))
  edit(flat)
  fx.write_legacy_checkpoint(str(tmp_path), 1, tree.unflatten(flat))
  return str(tmp_path)


def test_missing_param_named_with_expected_shape(tmp_path):
  name = "decoder/layers_2/encoder_decoder_attention/value/kernel"
  path = _write_edited(tmp_path, lambda flat: flat.pop(name))
  with pytest.raises(ValueError) as info:
    checkpoints.load(path)
  message = str(info.value)
  assert message.startswith(os.path.join(path, "checkpoint_1", "checkpoint"))
  assert f"missing (1):\n    {name}: expected (16, 16)" in message


def test_wrong_shapes_and_unexpected_params_all_listed(tmp_path):
  def edit(flat):
    flat["encoder/layers_1/mlp/wo/kernel"] = np.zeros((30, 16), np.float32)
    flat["decoder/layers_0/pre_mlp_layer_norm/scale"] = np.ones((15,), np.float32)
    flat["encoder/layers_0/attention/bias"] = np.zeros((16,), np.float32)
  path = _write_edited(tmp_path, edit)
  with pytest.raises(ValueError) as info:
    checkpoints.load(path)
  message = str(info.value)
  assert "unexpected (1):\n    encoder/layers_0/attention/bias: found (16,)" in message
  assert "wrong shape (2):" in message
  assert "decoder/layers_0/pre_mlp_layer_norm/scale: expected (16,), found (15,)" in message
  assert "encoder/layers_1/mlp/wo/kernel: expected (32, 16), found (30, 16)" in message


def test_given_config_that_does_not_fit(legacy):
  config, _, model_dir, _ = legacy
  with pytest.raises(ValueError, match=r"(?s)missing \(1[34]\):\n    decoder/layers_3/"):
    checkpoints.load(model_dir, config=config.replace(num_decoder_layers=4))
  with pytest.raises(ValueError, match=r"wrong shape \(2\):\n"
                                       r"    decoder/relpos_bias/rel_embedding: expected "
                                       r"\(4, 32\), found \(2, 32\)\n"
                                       r"    encoder/relpos_bias/rel_embedding: "):
    # Same [D, N * K] kernels; only the per-head relative bias tables differ.
    checkpoints.load(model_dir, config=config.replace(num_heads=4, head_dim=4))


def test_vocab_mismatch_has_its_own_message(legacy):
  config, _, model_dir, _ = legacy
  with pytest.raises(ValueError, match=r"vocab size mismatch: token_embedder/embedding has "
                                       r"shape \(64, 16\), i\.e\. vocab_size=64; the config "
                                       r"expects vocab_size=32128"):
    checkpoints.load(model_dir, config=config.replace(vocab_size=32128))


def test_missing_tensorstore_array_is_named(tmp_path):
  params = fx.random_params(CONFIG, seed=9)
  step_dir = fx.write_legacy_checkpoint(str(tmp_path), 1, params)
  shutil.rmtree(os.path.join(step_dir, "target.decoder.layers_1.mlp.wo.kernel"))
  file = os.path.join(step_dir, "checkpoint")
  with pytest.raises(ValueError, match=rf"^{re.escape(file)}: cannot open the tensorstore "
                                       r"array of decoder/layers_1/mlp/wo/kernel \("
                                       r"target\.decoder\.layers_1\.mlp\.wo\.kernel/ under "):
    checkpoints.load(step_dir)


def test_bad_dtype_argument(legacy):
  with pytest.raises(ValueError, match=r"dtype='float16'; expected one of \('float32', "
                                       r"'bfloat16'\)"):
    checkpoints.load(legacy[2], dtype="float16")


# ------------------------------------- Orbax trees, written with Orbax's own API


def _orbax_save(directory, tree_to_save, use_ocdbt=True):
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  with ocp.Checkpointer(ocp.PyTreeCheckpointHandler(use_ocdbt=use_ocdbt)) as checkpointer:
    checkpointer.save(directory, args=ocp.args.PyTreeSave(tree_to_save))
  return directory


@pytest.mark.parametrize("layout", ["t5x", "params", "bare"])
def test_orbax_params_are_found_in_each_layout(layout, tmp_path):
  # T5X's {"target", "state"}; flax / Orbax examples' {"params": ...}; the params alone.
  params = fx.random_params(CONFIG, seed=10)
  stored = {"t5x": {"target": params, "state": fx.adafactor_state(params, 5)},
            "params": {"params": params, "step": np.int32(5)},
            "bare": params}[layout]
  directory = _orbax_save(str(tmp_path / "state"), stored)
  config, loaded = t5x.load_orbax(directory)  # default dtype: float32
  assert config == CONFIG.replace(dropout_rate=0.1)
  _assert_same_params(params, loaded)
  # A given config is the one returned (dropout_rate cannot be read off shapes).
  assert t5x.load_orbax(directory, config=CONFIG)[0] == CONFIG


def test_orbax_without_params_is_refused_naming_the_directory(tmp_path):
  params = fx.random_params(CONFIG, seed=11)
  directory = _orbax_save(str(tmp_path / "state"), {"state": fx.adafactor_state(params, 5)})
  with pytest.raises(ValueError, match=rf"^{re.escape(directory)}: no params in the Orbax "
                                       r"checkpoint; expected a 'target' \(T5X\) or 'params' "
                                       r"subtree, found \['state'\]"):
    t5x.load_orbax(directory)


def test_orbax_shape_errors_name_the_directory(tmp_path):
  flat = tree.flatten(fx.random_params(CONFIG, seed=12))
  wrong = dict(flat, **{"encoder/layers_1/mlp/wo/kernel": np.zeros((30, 16), np.float32)})
  directory = _orbax_save(str(tmp_path / "wrong"), {"target": tree.unflatten(wrong)})
  with pytest.raises(ValueError, match=rf"^{re.escape(directory)}: parameters do not match"):
    t5x.load_orbax(directory)


def test_orbax_reference_prompt_path_is_mapped(tmp_path):
  flat = tree.flatten(fx.random_params(CONFIG, seed=13))
  prompt = np.random.default_rng(1).uniform(-0.5, 0.5, (4, 16)).astype(np.float32)
  directory = _orbax_save(str(tmp_path / "state"),
                          {"target": tree.unflatten(dict(flat, **{REFERENCE_PROMPT_PATH: prompt}))})
  _, loaded = t5x.load_orbax(directory)
  loaded = tree.flatten(loaded)
  assert REFERENCE_PROMPT_PATH not in loaded
  np.testing.assert_array_equal(loaded[PROMPT_PATH], prompt)


def test_orbax_optimizer_state_is_not_read(tmp_path):
  # Without OCDBT (older Orbax / T5X) each leaf is a zarr array in its own directory,
  # named by its dotted path. Orbax opens every array's metadata (.zarray) even for a
  # partial restore, so the optimizer state's chunks are removed: reading any of them
  # would fail (Orbax writes its specs with fill_missing_data_reads=false).
  params = fx.random_params(CONFIG, seed=14)
  directory = _orbax_save(str(tmp_path / "state"),
                          {"target": params, "state": fx.adafactor_state(params, 5)},
                          use_ocdbt=False)
  removed = 0
  for name in os.listdir(directory):
    if name.startswith("state."):
      for chunk in os.listdir(os.path.join(directory, name)):
        if chunk != ".zarray":
          os.remove(os.path.join(directory, name, chunk))
          removed += 1
  assert removed and os.path.isdir(os.path.join(directory, "target.token_embedder.embedding"))
  _assert_same_params(params, t5x.load_orbax(directory)[1])


# ------------------------------------------- older and malformed legacy layouts


def _rewrite_msgpack(step_dir, edit):
  path = os.path.join(step_dir, "checkpoint")
  with open(path, "rb") as f:
    contents = serialization.msgpack_restore(f.read())
  contents = edit(contents)
  with open(path, "wb") as f:
    f.write(serialization.msgpack_serialize(contents))
  return path


def _map_specs(node, fn):
  if isinstance(node, dict) and "driver" in node:
    return fn(node)
  if isinstance(node, dict):
    return {k: _map_specs(v, fn) for k, v in node.items()}
  return node


def test_specs_of_tensorstore_before_0_1_14_keep_the_path_outside_the_kvstore(tmp_path):
  params = fx.random_params(CONFIG, seed=15)
  step_dir = fx.write_legacy_checkpoint(str(tmp_path), 1, params)

  def edit(contents):
    def move(spec):  # {"driver": "zarr", "path": ..., "metadata": ...}, no kvstore
      out = {k: v for k, v in spec.items() if k != "kvstore"}
      out["path"] = spec["kvstore"]["path"]
      return out
    contents["optimizer"]["target"] = _map_specs(contents["optimizer"]["target"], move)
    return contents

  file = _rewrite_msgpack(step_dir, edit)
  with open(file, "rb") as f:
    target = _leaves(serialization.msgpack_restore(f.read())["optimizer"]["target"])
  specs = [v for v in target.values() if isinstance(v, dict)]
  assert specs and all("kvstore" not in s and "path" in s for s in specs)
  _assert_same_params(params, t5x.load_legacy(file)[1])  # default dtype: float32


def test_a_plain_flax_checkpoint_without_the_optimizer_wrapper(tmp_path):
  # flax's checkpoints before T5X's optimizer wrapper: {"target": params}, inline.
  params = fx.random_params(CONFIG, seed=16)
  (tmp_path / "checkpoint").write_bytes(serialization.msgpack_serialize({"target": params}))
  _assert_same_params(params, t5x.load_legacy(str(tmp_path / "checkpoint"))[1])


def test_legacy_errors_name_the_file_and_the_parameter(tmp_path):
  file = str(tmp_path / "junk" / "checkpoint")
  os.makedirs(os.path.dirname(file))
  with open(file, "wb") as f:
    f.write(serialization.msgpack_serialize({"version": 3, "optimizer": "junk"}))
  with pytest.raises(ValueError, match=rf"^{re.escape(file)}: no 'target' \(params\) in the "
                                       r"T5X checkpoint; .*found str\.$"):
    t5x.load_legacy(file)

  params = fx.random_params(CONFIG, seed=17)
  step_dir = fx.write_legacy_checkpoint(str(tmp_path / "nometa"), 1, params)
  name = "encoder/layers_0/mlp/wo/kernel"

  def drop_metadata(contents):
    leaf = contents["optimizer"]["target"]["encoder"]["layers_0"]["mlp"]["wo"]["kernel"]
    del leaf["metadata"]
    return contents

  file = _rewrite_msgpack(step_dir, drop_metadata)
  with pytest.raises(ValueError, match=rf"^{re.escape(file)}: tensorstore spec of {name} "
                                       r"has no metadata\.shape"):
    t5x.load_legacy(file)


def test_absolute_spec_leaves_its_input_alone_and_needs_no_metadata():
  spec = {"driver": "zarr", "dtype": "float32",
          "kvstore": {"driver": "file", "path": "target.x"},
          "metadata": {"shape": [4], "chunks": [2], "compressor": {"id": "gzip"}}}
  before = copy.deepcopy(spec)
  assert t5x.absolute_spec(spec, "/c")["metadata"] == {"shape": [4]}
  assert spec == before
  bare = {"driver": "zarr", "kvstore": {"driver": "file", "path": "target.x"}}
  assert t5x.absolute_spec(bare, "/c") == {
      "driver": "zarr", "kvstore": {"driver": "file", "path": "/c/target.x"}}


# ------------------------------------------------ the config read off the shapes


def test_derive_config_reads_the_architecture_off_the_shapes():
  derive = validation.derive_config
  # 8 relative-position buckets, not T5Config's default 32.
  assert derive(fx.random_params(CONFIG.replace(relative_attention_num_buckets=8))) == \
      CONFIG.replace(relative_attention_num_buckets=8, dropout_rate=0.1)
  # No layers in a stack is 0 layers (T5Config allows it), not an error and not 1.
  assert derive(fx.random_params(CONFIG.replace(num_decoder_layers=0))).num_decoder_layers == 0
  # One MLP input kernel: T5 1.0's ReLU, unless the base has another single activation.
  single = fx.random_params(TIED)
  assert derive(single).mlp_activations == ("relu",)
  assert derive(single, base=T5Config(mlp_activations=("gelu",))).mlp_activations == ("gelu",)
  # Two: the base's pair if it has two, else T5 1.1's gated GELU.
  gated = fx.random_params(CONFIG)
  assert derive(gated, base=T5Config(mlp_activations=("silu", "linear"))).mlp_activations == \
      ("silu", "linear")
  assert derive(gated, base=T5Config(mlp_activations=("relu",))).mlp_activations == \
      ("gelu", "linear")


def test_derive_config_errors_name_the_source_and_the_missing_parameter():
  flat = tree.flatten(fx.random_params(CONFIG))
  for missing in ("token_embedder/embedding", "encoder/relpos_bias/rel_embedding",
                  "encoder/layers_0/attention/query/kernel"):
    partial = tree.unflatten({k: v for k, v in flat.items() if k != missing})
    with pytest.raises(ValueError, match=rf"^ckpt: cannot derive the model config: parameter "
                                         rf"{missing} is missing"):
      validation.derive_config(partial, "ckpt")
    with pytest.raises(ValueError, match=r"^params: cannot derive"):  # the default name
      validation.derive_config(partial)


def test_resolve_config_derives_one_naming_the_checkpoint_or_checks_the_one_given():
  params = fx.random_params(CONFIG)
  assert validation.resolve_config(params, "ckpt", None) == CONFIG.replace(dropout_rate=0.1)
  assert validation.resolve_config(params, "ckpt", CONFIG) is CONFIG
  flat = tree.flatten(params)
  partial = tree.unflatten({k: v for k, v in flat.items() if k != "token_embedder/embedding"})
  # A config derived from a checkpoint's params names that checkpoint when it cannot.
  with pytest.raises(ValueError, match=r"^/runs/a/checkpoint_7: cannot derive the model "
                                       r"config: parameter token_embedder/embedding"):
    validation.resolve_config(partial, "/runs/a/checkpoint_7", None)


def test_a_stored_prompt_is_a_prompt_or_a_bank_of_the_models_width():
  d = CONFIG.emb_dim
  flat = tree.flatten(fx.random_params(CONFIG))
  with_prompt = lambda shape: tree.unflatten({**flat, PROMPT_PATH: np.zeros(shape, np.float32)})
  for shape in [(5, d), (3, 5, d)]:  # [P, D] and [K, P, D], P != D
    validation.validate_params(CONFIG, with_prompt(shape), "ckpt")
  for shape in [(d,), (2, 3, 5, d), (3, d, 5), (5, d + 1)]:
    with pytest.raises(ValueError, match=re.escape(
        f"ckpt: {PROMPT_PATH} has shape {shape}; expected a [P, d_model={d}] prompt "
        "or a [K, P, d_model] bank.")):
      validation.validate_params(CONFIG, with_prompt(shape), "ckpt")
  with pytest.raises(ValueError, match=rf"^params: {PROMPT_PATH} has shape"):  # the default
    validation.validate_params(CONFIG, with_prompt((d,)))


def test_cast_copies_only_the_leaves_whose_dtype_changes():
  # A loaded checkpoint is cast leaf by leaf: a leaf already in the dtype is the same
  # array (a big model is not held twice while loading), the others are new arrays.
  import ml_dtypes  # pylint: disable=import-outside-toplevel
  kept, wider = np.arange(6, dtype=np.float32), np.arange(4, dtype=np.float64) / 3
  out = validation.cast({"a": kept, "b": {"c": wider}}, "float32")
  assert out["a"] is kept
  assert out["b"]["c"].dtype == np.float32 and not np.shares_memory(out["b"]["c"], wider)
  np.testing.assert_array_equal(out["b"]["c"], wider.astype(np.float32))
  half = validation.cast({"a": kept}, "bfloat16")["a"]
  assert half.dtype == ml_dtypes.bfloat16 and isinstance(half, np.ndarray)
  with pytest.raises(ValueError, match="float16"):
    validation.cast({"a": kept}, "float16")


def test_the_vocab_check_reads_the_output_layer_and_only_the_layers_the_model_has():
  d, v = CONFIG.emb_dim, CONFIG.vocab_size
  flat = tree.flatten(fx.random_params(CONFIG))
  # Only the untied output layer's vocab is off: its own message, not a wrong shape.
  wide = tree.unflatten({**flat, "decoder/logits_dense/kernel": np.zeros((d, v + 1))})
  with pytest.raises(ValueError, match=re.escape(
      f"ckpt: vocab size mismatch: decoder/logits_dense/kernel has shape ({d}, {v + 1}), "
      f"i.e. vocab_size={v + 1}")):
    validation.validate_params(CONFIG, wide, "ckpt")
  # A missing embedding is listed as missing, not read.
  no_embedding = tree.unflatten({k: a for k, a in flat.items() if k != "token_embedder/embedding"})
  with pytest.raises(ValueError, match=re.escape(
      f"missing (1):\n    token_embedder/embedding: expected ({v}, {d})")):
    validation.validate_params(CONFIG, no_embedding, "ckpt")
  # A tied model has no output layer: a stored one is unexpected, whatever its vocab.
  tied = tree.flatten(fx.random_params(TIED))
  extra = tree.unflatten({**tied, "decoder/logits_dense/kernel": np.zeros((d, v + 1))})
  with pytest.raises(ValueError, match=re.escape(
      f"unexpected (1):\n    decoder/logits_dense/kernel: found ({d}, {v + 1})")):
    validation.validate_params(TIED, extra, "ckpt")


def test_a_leafs_shape_is_read_off_arrays_abstract_leaves_and_plain_values():
  assert validation.shape_of(np.zeros((2, 3), np.float32)) == (2, 3)
  assert validation.shape_of(jax.ShapeDtypeStruct((4, 5), np.float32)) == (4, 5)
  assert validation.shape_of([[1.0, 2.0, 3.0]]) == (1, 3)
  assert validation.shape_of(2.0) == ()
