"""Hugging Face T5 <-> our params, checked against `transformers.T5ForConditionalGeneration`.

Two tiny architectures: T5 1.1 (gated GELU, untied lm_head) and T5 1.0-style
(ReLU, output tied to the embedding and rescaled). Weights go HF -> ours and
ours -> HF; logits must agree within 1e-4 on a padded batch (float32, CPU).
"""
import json
import os
import re
import shutil

import jax
import numpy as np
from references import randomize_hf_weights, reference_library
import pytest

torch = reference_library("torch")
transformers = reference_library("transformers")

from prompt_tuning import checkpoints, tree  # pylint: disable=wrong-import-position
from prompt_tuning.checkpoints import hf  # pylint: disable=wrong-import-position
from prompt_tuning.models import T5Config, init_params  # pylint: disable=wrong-import-position

import t5x_fixtures as fx  # pylint: disable=wrong-import-position

TOL = 1e-4
ARCHS = {
    # name: (HF feed_forward_proj, tie_word_embeddings)
    "t5_1_1": ("gated-gelu", False),
    "t5_1_0": ("relu", True),
}


def _hf_config(arch: str):
  proj, tie = ARCHS[arch]
  # 3 decoder layers vs 2 encoder layers, so a swapped count cannot pass.
  return transformers.T5Config(
      vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=3,
      num_heads=2, relative_attention_num_buckets=16, relative_attention_max_distance=32,
      feed_forward_proj=proj, tie_word_embeddings=tie, dropout_rate=0.0,
      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


def _random_hf_model(arch: str, seed: int = 0):
  """An HF T5 with every weight random (norm scales too), in eval mode."""
  torch.manual_seed(seed)
  model = transformers.T5ForConditionalGeneration(_hf_config(arch))
  randomize_hf_weights(model, untie_lm_head=not ARCHS[arch][1])  # T5 1.1 is untied
  return model.eval()


def _hf_logits(model, encoder, decoder) -> np.ndarray:
  with torch.no_grad():
    out = model(input_ids=torch.tensor(encoder, dtype=torch.long),
                attention_mask=torch.tensor(encoder > 0, dtype=torch.long),
                decoder_input_ids=torch.tensor(decoder, dtype=torch.long))
  return out.logits.numpy()


def _max_diff_on_real_targets(config, params, hf_model) -> float:
  encoder, decoder, targets = fx.padded_batch()
  ours = fx.logits(config, params, encoder, decoder, targets)
  theirs = _hf_logits(hf_model, encoder, decoder)
  assert ours.shape == theirs.shape == (2, 4, 64)
  real = targets > 0  # padded decoder positions are not compared
  return float(np.abs(ours - theirs)[real].max())


@pytest.fixture(scope="module", params=sorted(ARCHS))
def hf_checkpoint(request, tmp_path_factory):
  arch = request.param
  model = _random_hf_model(arch)
  directory = str(tmp_path_factory.mktemp(arch))
  model.save_pretrained(directory)
  return arch, model, directory


def test_hf_to_ours_logits_match(hf_checkpoint):
  arch, model, directory = hf_checkpoint
  config, params = checkpoints.load(directory)
  proj, tie = ARCHS[arch]
  assert (config.num_encoder_layers, config.num_decoder_layers) == (2, 3)
  assert config.logits_via_embedding == tie
  assert config.mlp_activations == {"gated-gelu": ("gelu", "linear"), "relu": ("relu",)}[proj]
  assert (config.relative_attention_num_buckets,
          config.relative_attention_max_distance) == (16, 32)
  assert _max_diff_on_real_targets(config, params, model) < TOL


def test_hf_weights_are_copied_not_approximated(hf_checkpoint):
  arch, model, directory = hf_checkpoint
  _, params = checkpoints.load(directory)
  flat = tree.flatten(params)
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  np.testing.assert_array_equal(flat["encoder/layers_1/attention/query/kernel"],
                                sd["encoder.block.1.layer.0.SelfAttention.q.weight"].T)
  np.testing.assert_array_equal(
      flat["decoder/relpos_bias/rel_embedding"],
      sd["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].T)
  np.testing.assert_array_equal(flat["decoder/layers_2/pre_cross_attention_layer_norm/scale"],
                                sd["decoder.block.2.layer.1.layer_norm.weight"])
  if not ARCHS[arch][1]:
    np.testing.assert_array_equal(flat["decoder/logits_dense/kernel"],
                                  sd["lm_head.weight"].T)
  else:
    assert "decoder/logits_dense/kernel" not in flat


def _our_config(arch: str) -> T5Config:
  proj, tie = ARCHS[arch]
  return T5Config(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
                  num_encoder_layers=2, num_decoder_layers=3, dropout_rate=0.0,
                  relative_attention_num_buckets=16, relative_attention_max_distance=32,
                  mlp_activations={"gated-gelu": ("gelu", "linear"), "relu": ("relu",)}[proj],
                  logits_via_embedding=tie)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_ours_to_hf_logits_match_and_round_trip(arch, tmp_path):
  config = _our_config(arch)
  params = fx.random_params(config, seed=3)
  checkpoints.save_hf(config, params, str(tmp_path))
  model = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path)).eval()
  assert (model.lm_head.weight is model.shared.weight) == config.logits_via_embedding
  assert model.config.scale_decoder_outputs == config.logits_via_embedding
  assert _max_diff_on_real_targets(config, params, model) < TOL

  config_back, params_back = checkpoints.load(str(tmp_path))
  assert config_back == config
  before, after = tree.flatten(params), tree.flatten(params_back)
  assert sorted(before) == sorted(after)
  for path in before:
    np.testing.assert_array_equal(before[path], after[path], err_msg=path)


def test_save_hf_writes_what_save_pretrained_writes(hf_checkpoint, tmp_path):
  arch, model, directory = hf_checkpoint
  config, params = checkpoints.load(directory)
  checkpoints.save_hf(config, params, str(tmp_path))
  ours = hf.read_state(str(tmp_path))
  theirs = hf.read_state(directory)
  assert sorted(ours) == sorted(theirs)
  for name in theirs:
    np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
  with open(tmp_path / "config.json", encoding="utf-8") as f:
    written = json.load(f)
  assert written["tie_word_embeddings"] == ARCHS[arch][1]
  assert written["feed_forward_proj"] == ARCHS[arch][0]


def test_bfloat16_restore(hf_checkpoint):
  _, _, directory = hf_checkpoint
  _, full = checkpoints.load(directory)
  _, half = checkpoints.load(directory, dtype="bfloat16")
  full, half = tree.flatten(full), tree.flatten(half)
  assert {str(v.dtype) for v in half.values()} == {"bfloat16"}
  for path in full:
    np.testing.assert_array_equal(half[path], full[path].astype(half[path].dtype))


def test_pytorch_bin_and_sharded_safetensors_load_the_same(hf_checkpoint, tmp_path):
  arch, model, directory = hf_checkpoint
  _, reference = checkpoints.load(directory)
  bin_dir, sharded_dir = tmp_path / "bin", tmp_path / "sharded"
  bin_dir.mkdir()
  torch.save(model.state_dict(), bin_dir / "pytorch_model.bin")  # old files keep tied copies
  shutil.copy(os.path.join(directory, "config.json"), bin_dir / "config.json")
  model.save_pretrained(str(sharded_dir), max_shard_size="20KB")
  assert (sharded_dir / "model.safetensors.index.json").exists(), arch
  for other in (bin_dir, sharded_dir):
    _, params = checkpoints.load(str(other))
    a, b = tree.flatten(reference), tree.flatten(params)
    assert sorted(a) == sorted(b)
    for path in a:
      np.testing.assert_array_equal(a[path], b[path], err_msg=f"{other}: {path}")


# ------------------------------------------------------------------- bad input


def _copy_with_state(directory, tmp_path, edit):
  state = hf.read_state(directory)
  edit(state)
  from safetensors.numpy import save_file
  save_file(state, str(tmp_path / "model.safetensors"))
  shutil.copy(os.path.join(directory, "config.json"), tmp_path / "config.json")
  return str(tmp_path)


def test_missing_hf_weight_is_named(hf_checkpoint, tmp_path):
  _, _, directory = hf_checkpoint
  name = "decoder.block.2.layer.2.DenseReluDense.wo.weight"
  bad = _copy_with_state(directory, tmp_path, lambda s: s.pop(name))
  with pytest.raises(ValueError, match=r"missing \(1\): " + name.replace(".", r"\.")):
    checkpoints.load(bad)


def test_wrong_hf_shape_names_param_expected_and_found(hf_checkpoint, tmp_path):
  _, _, directory = hf_checkpoint
  name = "encoder.block.0.layer.0.SelfAttention.k.weight"
  bad = _copy_with_state(directory, tmp_path,
                         lambda s: s.__setitem__(name, np.zeros((8, 16), np.float32)))
  with pytest.raises(ValueError) as info:
    checkpoints.load(bad)
  message = str(info.value)
  assert bad in message
  assert (f"encoder/layers_0/attention/key/kernel ({name}): expected (16, 16), "
          "found (16, 8)") in message


def test_unexpected_hf_weight_is_named(hf_checkpoint, tmp_path):
  _, _, directory = hf_checkpoint
  bad = _copy_with_state(directory, tmp_path,
                         lambda s: s.__setitem__("encoder.block.2.extra.weight",
                                                 np.zeros((3,), np.float32)))
  with pytest.raises(ValueError, match=r"unexpected \(1\): encoder\.block\.2\.extra\.weight"):
    checkpoints.load(bad)


def test_vocab_mismatch_with_given_config(hf_checkpoint):
  arch, _, directory = hf_checkpoint
  config = _our_config(arch).replace(vocab_size=32)
  with pytest.raises(ValueError, match=r"vocab size mismatch.*vocab_size=64.*"
                                       r"expects vocab_size=32"):
    checkpoints.load(directory, config=config)


def test_given_config_must_fit(hf_checkpoint):
  arch, _, directory = hf_checkpoint
  wrong = _our_config(arch).replace(mlp_dim=24)
  # Every wi* and wo kernel of the 5 layers, listed in one error.
  count = 5 * (len(wrong.mlp_activations) + 1)
  with pytest.raises(ValueError, match=rf"wrong shape \({count}\):\n.*"
                                       r"expected \(16, 24\), found \(16, 32\)"):
    checkpoints.load(directory, config=wrong)


def test_untied_lm_head_with_tied_config_is_refused(tmp_path):
  model = _random_hf_model("t5_1_1")
  model.save_pretrained(str(tmp_path))
  config_file = tmp_path / "config.json"
  data = json.loads(config_file.read_text())
  data.pop("scale_decoder_outputs", None)
  data["tie_word_embeddings"] = True
  config_file.write_text(json.dumps(data))
  with pytest.raises(ValueError, match="lm_head.weight differs from shared.weight"):
    checkpoints.load(str(tmp_path))


def test_config_mappings_reject_what_we_cannot_represent():
  with pytest.raises(ValueError, match="feed_forward_proj='gelu'.*expected one of"):
    hf.config_from_hf({"feed_forward_proj": "gelu"})
  with pytest.raises(ValueError, match="layer_norm_epsilon=1e-05; expected 1e-06"):
    hf.config_from_hf({"layer_norm_epsilon": 1e-5})
  with pytest.raises(ValueError, match=r"mlp_activations=\('linear', 'gelu'\)"):
    hf.config_to_hf(T5Config(mlp_activations=("linear", "gelu")))


def test_save_hf_refuses_to_overwrite_and_to_drop_a_prompt_silently(tmp_path):
  config = _our_config("t5_1_1")
  params = fx.random_params(config)
  checkpoints.save_hf(config, params, str(tmp_path))
  with pytest.raises(FileExistsError, match="overwrite=True"):
    checkpoints.save_hf(config, params, str(tmp_path))
  checkpoints.save_hf(config, params, str(tmp_path), overwrite=True)
  prompted = dict(params, encoder=dict(params["encoder"],
                                       prompt={"prompt": np.zeros((3, 16), np.float32)}))
  with pytest.raises(ValueError, match="drop_prompt=True"):
    checkpoints.save_hf(config, prompted, str(tmp_path), overwrite=True)


# ------------------------------------------- save_hf's files vs save_pretrained's


def _json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _assert_written_like_save_pretrained(ours_dir, theirs_dir):
  """Every config.json field we write is the one save_pretrained writes, laid out
  the way it writes them, and the safetensors header carries the same metadata."""
  from safetensors import safe_open
  ours, theirs = _json(os.path.join(ours_dir, "config.json")), _json(
      os.path.join(theirs_dir, "config.json"))
  # transformers 5 writes tie_word_embeddings=true even for an untied lm_head and keeps
  # the decision in scale_decoder_outputs; from_pretrained reads ours the same way
  # (test_ours_to_hf_logits_match_and_round_trip), so that one field may differ.
  differ = {k: (ours[k], theirs.get(k, "<absent>")) for k in ours
            if k != "tie_word_embeddings" and theirs.get(k, "<absent>") != ours[k]}
  assert not differ
  assert {"architectures", "model_type", "dtype", "layer_norm_epsilon", "is_encoder_decoder",
          "pad_token_id", "eos_token_id", "decoder_start_token_id"} <= set(ours)
  for directory in (ours_dir, theirs_dir):  # transformers' layout: indent 2, sorted keys
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
      text = f.read()
    assert text.strip() == json.dumps(json.loads(text), indent=2, sort_keys=True)
  metadata = [safe_open(os.path.join(d, "model.safetensors"), "np").metadata()
              for d in (ours_dir, theirs_dir)]
  assert metadata[0] == metadata[1] == {"format": "pt"}


def test_save_hf_config_and_header_are_what_save_pretrained_writes(hf_checkpoint, tmp_path):
  _, _, directory = hf_checkpoint
  config, params = checkpoints.load(directory)
  checkpoints.save_hf(config, params, str(tmp_path))
  _assert_written_like_save_pretrained(str(tmp_path), directory)


def _state_of(directory, **kwargs):
  model = transformers.T5ForConditionalGeneration.from_pretrained(directory, **kwargs)
  return model, model.state_dict()


def test_save_hf_in_bfloat16_is_what_save_pretrained_writes_in_bfloat16(tmp_path):
  model = _random_hf_model("t5_1_1", seed=4).to(torch.bfloat16)
  model.save_pretrained(str(tmp_path / "theirs"))
  config, params = checkpoints.load(str(tmp_path / "theirs"), dtype="bfloat16")
  checkpoints.save_hf(config, params, str(tmp_path / "ours"))
  _assert_written_like_save_pretrained(str(tmp_path / "ours"), str(tmp_path / "theirs"))
  assert _json(tmp_path / "ours" / "config.json")["dtype"] == "bfloat16"
  loaded, state = _state_of(str(tmp_path / "ours"), dtype="auto")
  assert loaded.dtype == torch.bfloat16
  for name, value in model.state_dict().items():
    assert state[name].dtype == torch.bfloat16, name
    assert torch.equal(state[name], value), name


def test_save_hf_writes_a_float32_and_bfloat16_mix_leaf_by_leaf(tmp_path):
  import ml_dtypes  # pylint: disable=import-outside-toplevel
  config = _our_config("t5_1_1")
  flat = tree.flatten(fx.random_params(config, seed=5))
  # Norm scales kept float32, every kernel and table bfloat16.
  mixed = {k: v if k.endswith("/scale") else v.astype(ml_dtypes.bfloat16)
           for k, v in flat.items()}
  checkpoints.save_hf(config, tree.unflatten(mixed), str(tmp_path))
  assert _json(tmp_path / "config.json")["dtype"] == "float32"
  _, state = _state_of(str(tmp_path))
  assert state["encoder.final_layer_norm.weight"].dtype == torch.float32
  np.testing.assert_array_equal(state["encoder.final_layer_norm.weight"].numpy(),
                                flat["encoder/encoder_norm/scale"])
  # bfloat16 values are float32 values with the low 16 bits zero: exact after upcasting.
  np.testing.assert_array_equal(
      state["encoder.block.0.layer.0.SelfAttention.q.weight"].float().numpy(),
      mixed["encoder/layers_0/attention/query/kernel"].astype(np.float32).T)


def test_save_hf_drop_prompt_writes_the_frozen_model_without_the_prompts(tmp_path):
  config = _our_config("t5_1_1")
  params = fx.random_params(config, seed=6)
  checkpoints.save_hf(config, params, str(tmp_path / "plain"))
  prompted = tree.flatten(params)
  prompted["encoder/prompt/prompt"] = np.ones((3, 16), np.float32)
  prompted["decoder/prompt/prompt"] = np.ones((2, 16), np.float32)
  checkpoints.save_hf(config, tree.unflatten(prompted), str(tmp_path / "dropped"),
                      drop_prompt=True)
  plain, dropped = hf.read_state(str(tmp_path / "plain")), hf.read_state(
      str(tmp_path / "dropped"))
  assert sorted(dropped) == sorted(plain)
  for name in plain:
    np.testing.assert_array_equal(dropped[name], plain[name], err_msg=name)
  assert _json(tmp_path / "dropped" / "config.json") == _json(tmp_path / "plain" / "config.json")


def test_save_hf_checks_shapes_before_writing_and_says_so(tmp_path):
  config = _our_config("t5_1_1")
  flat = tree.flatten(fx.random_params(config, seed=7))
  flat["encoder/layers_1/mlp/wo/kernel"] = np.zeros((30, 16), np.float32)
  with pytest.raises(ValueError, match=r"^params to save: parameters do not match the model "
                                       r"config.*\n  wrong shape \(1\):\n    encoder/layers_1/"
                                       r"mlp/wo/kernel: expected \(32, 16\), found \(30, 16\)"):
    checkpoints.save_hf(config, tree.unflatten(flat), str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")


# ------------------------------------------------------ PyTorch .bin files


def test_a_bfloat16_pytorch_bin_saved_on_a_gpu_loads_on_the_cpu(hf_checkpoint, tmp_path):
  """Most .bin files on the Hub were written from CUDA tensors, many in bfloat16."""
  _, model, directory = hf_checkpoint
  import torch.serialization  # pylint: disable=import-outside-toplevel
  state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
  # torch.save records each storage's device with `location_tag`; write "cuda:0" as
  # a GPU machine would, so loading needs map_location when CUDA is absent.
  tag = torch.serialization.location_tag
  torch.serialization.location_tag = lambda storage: "cuda:0"
  try:
    torch.save(state, tmp_path / "pytorch_model.bin")
  finally:
    torch.serialization.location_tag = tag
  shutil.copy(os.path.join(directory, "config.json"), tmp_path / "config.json")
  _, params = checkpoints.load(str(tmp_path))
  # The reference: the same weights read from transformers' safetensors file, rounded
  # to bfloat16 as torch rounded them.
  import ml_dtypes  # pylint: disable=import-outside-toplevel
  want, got = tree.flatten(checkpoints.load(directory)[1]), tree.flatten(params)
  assert sorted(got) == sorted(want)
  for path, value in want.items():
    assert got[path].dtype == np.float32, path
    np.testing.assert_array_equal(got[path], value.astype(ml_dtypes.bfloat16).astype(np.float32),
                                  err_msg=path)


def test_a_pytorch_bin_is_read_in_its_stored_dtypes_as_safetensors_are(tmp_path):
  # Only bfloat16 (which numpy cannot hold) goes through float32; float16, float64 and
  # integer tensors come back as they were written, as the safetensors reader gives them.
  state = {"half": torch.arange(6, dtype=torch.float16).reshape(2, 3) / 3,
           "double": torch.arange(4, dtype=torch.float64) / 7,
           "ids": torch.arange(5, dtype=torch.int64),
           "bf16": torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16)}
  torch.save(state, tmp_path / "pytorch_model.bin")
  got = hf.read_state(str(tmp_path))
  assert {k: v.dtype for k, v in got.items()} == {
      "half": np.float16, "double": np.float64, "ids": np.int64, "bf16": np.float32}
  for name in ("half", "double", "ids"):
    np.testing.assert_array_equal(got[name], state[name].numpy(), err_msg=name)
  np.testing.assert_array_equal(got["bf16"], [1.5, -2.25, 3.0])


def test_a_pytorch_bin_that_runs_code_when_unpickled_is_refused(hf_checkpoint, tmp_path):
  _, model, directory = hf_checkpoint
  marker = tmp_path / "code_ran"

  class _RunsCode:
    def __reduce__(self):
      return (os.mkdir, (str(marker),))

  torch.save(dict(model.state_dict(), payload=_RunsCode()), tmp_path / "pytorch_model.bin")
  shutil.copy(os.path.join(directory, "config.json"), tmp_path / "config.json")
  import pickle  # pylint: disable=import-outside-toplevel
  with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
    checkpoints.load(str(tmp_path))
  assert not marker.exists()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_module_names_are_hf_s_own_linear_modules(arch):
  # What PEFT adapters name the modules they adapt: every kernel of the layers maps to
  # a torch.nn.Linear of transformers' T5, each its own.
  names = hf.module_names(_our_config(arch))
  linear = {n for n, m in _random_hf_model(arch).named_modules()
            if isinstance(m, torch.nn.Linear) and n != "lm_head"}
  assert set(names.values()) == linear and len(set(names.values())) == len(names)
  assert names["encoder/layers_0/attention/query"] == "encoder.block.0.layer.0.SelfAttention.q"
  assert names["decoder/layers_2/encoder_decoder_attention/out"] == \
      "decoder.block.2.layer.1.EncDecAttention.o"
  assert names["decoder/layers_1/mlp/wo"] == "decoder.block.1.layer.2.DenseReluDense.wo"


def test_a_state_dict_read_as_is_names_itself_and_may_hold_the_unused_cross_attention_bias(
    hf_checkpoint):
  arch, _, directory = hf_checkpoint
  config = _our_config(arch)
  state = hf.read_state(directory)
  params, _ = hf.params_from_hf(config, state)
  # Some HF files also store a relative bias for the first cross-attention, which T5
  # never uses (cross-attention has no position bias): it is dropped, not "unexpected".
  unused = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"
  with_bias, _ = hf.params_from_hf(config, {**state, unused: np.zeros((32, 4), np.float32)})
  flat, flat_with_bias = tree.flatten(params), tree.flatten(with_bias)
  assert sorted(flat) == sorted(flat_with_bias)
  for name, value in flat.items():
    np.testing.assert_array_equal(flat_with_bias[name], value, err_msg=name)
  # Without a path, an error says it is about a state dict.
  state.pop("shared.weight")
  with pytest.raises(ValueError, match=r"^state dict: Hugging Face T5 weights do not match"):
    hf.params_from_hf(config, state)


def test_an_mt5_config_never_rescales_the_output_whatever_its_tie_flag_says():
  # transformers 5's MT5Config writes tie_word_embeddings=true and no scale flag; mT5
  # still has T5 1.1's untied, unscaled output layer.
  for extra in ({}, {"tie_word_embeddings": True}):
    config = hf.config_from_hf({"model_type": "mt5", **extra})
    assert config.logits_via_embedding is False, extra
    assert config.mlp_activations == ("gelu", "linear") and config.vocab_size == 250112
  assert hf.config_from_hf({"model_type": "t5", "tie_word_embeddings": True}).logits_via_embedding


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_a_mismatched_state_dict_lists_every_missing_and_unexpected_name(arch):
  config = _our_config(arch)
  state = hf.params_to_hf(config, init_params(config, jax.random.PRNGKey(0)))
  first, second = "encoder.block.0.layer.0.SelfAttention.q.weight", "lm_head.weight"
  if arch == "t5_1_0":
    second = "decoder.final_layer_norm.weight"
  for name in (first, second):
    state.pop(name)
  state["encoder.extra.weight"] = np.zeros((3, 2), np.float32)
  state["decoder.extra.bias"] = np.zeros((5,), np.float32)
  gated = arch == "t5_1_1"
  with pytest.raises(ValueError) as info:
    hf.params_from_hf(config, state, path="a.safetensors")
  lines = str(info.value).splitlines()
  assert lines[0] == ("a.safetensors: Hugging Face T5 weights do not match the config "
                      f"(num_layers=2, num_decoder_layers=3, feed_forward gated={gated}, "
                      f"tie_word_embeddings={not gated}):")
  missing = sorted([first, second], key=[n for _, n, _ in hf._name_table(config)].index)  # pylint: disable=protected-access
  assert lines[1] == "  missing (2): " + ", ".join(missing)
  assert lines[2] == "  unexpected (2): decoder.extra.bias (5,), encoder.extra.weight (3, 2)"


def test_load_hf_reads_float32_by_default_and_names_the_config_file_in_its_errors(
    hf_checkpoint, tmp_path):
  _, _, directory = hf_checkpoint
  _, params = hf.load_hf(directory)
  assert {np.asarray(x).dtype for x in tree.flatten(params).values()} == {np.dtype(np.float32)}
  bad = tmp_path / "bert"
  shutil.copytree(directory, bad)
  config = json.loads((bad / "config.json").read_text())
  (bad / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
  with pytest.raises(ValueError, match="^" + re.escape(f"{bad / 'config.json'}: model_type='bert'")):
    hf.load_hf(str(bad))


def test_an_untied_checkpoint_without_lm_head_reads_the_shared_embedding_unscaled(tmp_path):
  # An untied T5 1.1 whose output layer equals the embedding may be saved without
  # lm_head.weight (safetensors drops shared tensors): it is read as an unscaled kernel
  # equal to shared.weight, and gives transformers' logits.
  model = _random_hf_model("t5_1_1", seed=3)
  with torch.no_grad():
    model.lm_head.weight.copy_(model.shared.weight)
  model.save_pretrained(str(tmp_path / "full"))
  bad = _copy_with_state(str(tmp_path / "full"), tmp_path,
                         lambda s: s.pop("lm_head.weight"))
  config, params = checkpoints.load(bad)
  assert config.logits_via_embedding is False
  np.testing.assert_array_equal(params["decoder"]["logits_dense"]["kernel"],
                                params["token_embedder"]["embedding"].T)
  assert _max_diff_on_real_targets(config, params, model) < TOL
  # Without shared.weight too, the error names the directory and both weights.
  (tmp_path / "worse").mkdir()
  worse = _copy_with_state(bad, tmp_path / "worse", lambda s: s.pop("shared.weight"))
  with pytest.raises(ValueError, match=rf"^{re.escape(worse)}: Hugging Face T5 weights do not "
                                       r"match .*\n  missing \(2\): "
                                       r"shared\.weight, lm_head\.weight"):
    checkpoints.load(worse)


def test_a_t5_config_without_a_tie_flag_is_tied_as_in_transformers():
  # transformers' T5Config defaults to tie_word_embeddings=True: a config.json without
  # the flag (or the transformers 5 scale flag) is T5 1.0's tied, rescaled output; a
  # missing dropout_rate, bucket count or maximum distance is its default too.
  assert transformers.T5Config().tie_word_embeddings is True
  bare = hf.config_from_hf({"model_type": "t5"})
  assert bare.logits_via_embedding is True
  assert bare.dropout_rate == transformers.T5Config().dropout_rate == 0.1
  assert bare.relative_attention_num_buckets == 32
  assert transformers.T5Config().relative_attention_num_buckets == 32
  assert bare.relative_attention_max_distance == 128
  assert transformers.T5Config().relative_attention_max_distance == 128
  assert hf.config_from_hf({"model_type": "t5",
                            "tie_word_embeddings": False}).logits_via_embedding is False


@pytest.mark.parametrize("weights", hf.WEIGHT_FILES)
def test_an_hf_dir_needs_its_own_config_and_a_weight_file(tmp_path, monkeypatch, weights):
  model_dir, elsewhere = tmp_path / "model", tmp_path / "cwd"
  model_dir.mkdir()
  elsewhere.mkdir()
  (elsewhere / hf.CONFIG_FILE).write_text("{}")
  monkeypatch.chdir(elsewhere)  # a config.json in the working directory is not the model's
  (model_dir / weights).write_bytes(b"")
  assert not hf.is_hf_dir(str(model_dir))  # weights without their config.json
  (model_dir / hf.CONFIG_FILE).write_text("{}")
  assert hf.is_hf_dir(str(model_dir))
  (model_dir / weights).unlink()
  assert not hf.is_hf_dir(str(model_dir))  # a config.json without weights
