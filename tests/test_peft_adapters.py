"""LoRA and IA3 as PEFT adapters, in and out, checked against the real `peft` library.

The same frozen weights go to a Hugging Face directory (`save_hf`); our adapter,
exported, is applied by `peft.PeftModel.from_pretrained` and must give the
target log-likelihoods our model gives (1e-4); an adapter made and saved by
`peft` must read back and give in ours what it gives in PEFT. The files we
write must have the keys, shapes and config fields PEFT writes for T5.
"""
import json
import os

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file

import model_fixtures
from references import reference_library, target_log_likelihoods
from prompt_tuning import checkpoints, tree
from prompt_tuning.checkpoints import peft_adapters
from prompt_tuning.models import Transformer, adapter_params, get_config, scan, scoring
from prompt_tuning.models.adapters import AdapterSpec, LoraSpec
from prompt_tuning.prompts import peft as prompt_peft

torch = reference_library("torch")
transformers = reference_library("transformers")
peft_lib = reference_library("peft")

TINY = get_config("tiny", dropout_rate=0.0)
TOKENS = np.array([[5, 6, 7, 8, 1, 0], [9, 10, 1, 0, 0, 0], [11, 12, 13, 1, 0, 0]], np.int32)
TARGETS = np.array([[3, 4, 1], [20, 1, 0], [30, 31, 1]], np.int32)
SPECS = {
    "lora_qv": AdapterSpec(lora=LoraSpec(rank=4, alpha=16)),
    "lora_all": AdapterSpec(lora=LoraSpec(rank=2, alpha=3.0, targets=(
        "query", "key", "value", "out", "wi_0", "wi_1", "wo"))),
    "ia3": AdapterSpec(ia3=True),
}


@pytest.fixture(scope="module")
def frozen_hf(tmp_path_factory):
  """(our frozen params, an HF dir of the same weights)."""
  frozen = model_fixtures.random_params(TINY, seed=3)
  directory = str(tmp_path_factory.mktemp("hf"))
  checkpoints.save_hf(TINY, frozen, directory, overwrite=True)
  return frozen, directory


def _method_params(model, seed):
  """The model's method params, random and far from their init."""
  abstract = adapter_params.abstract_params(model)
  out = {p: v for p, v in model_fixtures.away_from_init(abstract, seed).items()
         if model.adapters.method_of(p)}
  assert out
  return out


def _our_scores(model, params):
  batch = {"encoder_input_tokens": TOKENS, "decoder_target_tokens": TARGETS,
           "decoder_input_tokens": np.pad(TARGETS[:, :-1], ((0, 0), (1, 0)))}
  return np.asarray(jax.jit(scoring.score, static_argnums=0)(model, params, batch))


def _peft_scores(peft_model):
  return target_log_likelihoods(peft_model, TOKENS, TARGETS)


def _base(directory):
  return transformers.T5ForConditionalGeneration.from_pretrained(directory).eval()


def _peft_config(name):
  spec = SPECS[name]
  if spec.ia3:
    return peft_lib.IA3Config(task_type="SEQ_2_SEQ_LM")  # PEFT's T5 default: k, v, wo
  hf_names = [peft_adapters.HF_PROJECTIONS[t] for t in spec.lora.targets]
  return peft_lib.LoraConfig(task_type="SEQ_2_SEQ_LM", r=spec.lora.rank,
                             lora_alpha=spec.lora.alpha, target_modules=hf_names,
                             lora_dropout=0.0)


def _peft_written(hf_dir, name, directory):
  """An adapter `peft` makes and saves, its weights random."""
  made = peft_lib.get_peft_model(_base(hf_dir), _peft_config(name))
  torch.manual_seed(0)
  with torch.no_grad():
    for key, value in made.named_parameters():
      if "lora_" in key or "ia3_l" in key:
        value.uniform_(0.5, 1.5) if "ia3_l" in key else value.normal_(0.0, 0.3)
  made.save_pretrained(directory)
  return directory


@pytest.mark.parametrize("scan_layers", [False, True])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_our_adapter_scores_the_same_in_peft(frozen_hf, tmp_path, name, scan_layers):
  frozen, hf_dir = frozen_hf
  config = TINY.replace(scan_layers=scan_layers)
  model = Transformer(config, adapters=SPECS[name])
  method = _method_params(Transformer(TINY, adapters=SPECS[name]), seed=1)
  params = tree.merge(frozen, tree.unflatten(method))
  ours = _our_scores(Transformer(TINY, adapters=SPECS[name]), params)
  # The method matters: the frozen model alone scores otherwise.
  assert np.abs(ours - _our_scores(Transformer(TINY), frozen)).max() > 1e-2
  saved = scan.to_layout(tree.unflatten(method), config) if scan_layers else method
  adapter = peft_adapters.save_adapter(str(tmp_path / "adapter"), model, saved,
                                       base_model_name_or_path=hf_dir)
  loaded = peft_lib.PeftModel.from_pretrained(_base(hf_dir), adapter).eval()
  np.testing.assert_allclose(ours, _peft_scores(loaded), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_what_we_write_is_laid_out_as_peft_writes_it(frozen_hf, tmp_path, name):
  frozen, hf_dir = frozen_hf
  model = Transformer(TINY, adapters=SPECS[name])
  ours = peft_adapters.save_adapter(str(tmp_path / "ours"), model,
                                    _method_params(model, seed=2),
                                    base_model_name_or_path=hf_dir)
  theirs = _peft_written(hf_dir, name, str(tmp_path / "theirs"))
  shapes = lambda d: {k: v.shape for k, v in load_file(
      os.path.join(d, prompt_peft.WEIGHTS_FILE)).items()}
  want = shapes(theirs)
  assert len(want) > 4 and shapes(ours) == want
  with open(os.path.join(ours, prompt_peft.CONFIG_FILE)) as f:
    our_config = json.load(f)
  with open(os.path.join(theirs, prompt_peft.CONFIG_FILE)) as f:
    their_config = json.load(f)
  fields = ["peft_type", "task_type", "base_model_name_or_path"] + (
      ["feedforward_modules"] if SPECS[name].ia3 else ["r", "lora_alpha"])
  assert {k: our_config[k] for k in fields} == {k: their_config[k] for k in fields}
  assert sorted(our_config["target_modules"]) == sorted(their_config["target_modules"])
  assert our_config["peft_type"] == ("IA3" if SPECS[name].ia3 else "LORA")
  # What PEFT itself reads from ours is the config we wrote.
  read = peft_lib.PeftConfig.from_pretrained(ours)
  assert read.peft_type.value == our_config["peft_type"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_an_adapter_written_by_peft_scores_the_same_in_ours(frozen_hf, tmp_path, name):
  frozen, hf_dir = frozen_hf
  directory = _peft_written(hf_dir, name, str(tmp_path / "peft_made"))
  spec, method = peft_adapters.load_adapter(directory, TINY)
  assert spec == SPECS[name]
  want = _peft_scores(peft_lib.PeftModel.from_pretrained(_base(hf_dir), directory).eval())
  model = Transformer(TINY, adapters=spec)
  got = _our_scores(model, tree.merge(frozen, method))
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
  assert np.abs(got - _our_scores(Transformer(TINY), frozen)).max() > 1e-2
  # ... and written back by us it is the same files' content.
  again = peft_adapters.save_adapter(str(tmp_path / "again"), model, method)
  a, b = (load_file(os.path.join(d, prompt_peft.WEIGHTS_FILE)) for d in (directory, again))
  assert sorted(a) == sorted(b)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _edit_config(directory, **changes):
  path = os.path.join(directory, prompt_peft.CONFIG_FILE)
  with open(path) as f:
    config = json.load(f)
  with open(path, "w") as f:
    json.dump(dict(config, **changes), f)


def test_bad_adapters_are_refused_naming_what_was_expected(frozen_hf, tmp_path):
  frozen, hf_dir = frozen_hf
  model = Transformer(TINY, adapters=SPECS["lora_qv"])
  method = _method_params(model, seed=3)
  good = peft_adapters.save_adapter(str(tmp_path / "good"), model, method)
  with pytest.raises(FileExistsError, match="overwrite"):
    peft_adapters.save_adapter(good, model, method)
  with pytest.raises(ValueError, match=r"params lack 24 lora params.*query/lora_a"):
    peft_adapters.save_adapter(str(tmp_path / "none"), model, frozen)
  both = Transformer(TINY, adapters=AdapterSpec(lora=LoraSpec(2), ia3=True))
  with pytest.raises(ValueError, match=r"holds one method; the model has adapters "
                                       r"\('lora', 'ia3'\)"):
    peft_adapters.save_adapter(str(tmp_path / "both"), both, {})
  prompt_dir = prompt_peft.save_adapter(str(tmp_path / "prompt"), np.ones((3, 16), np.float32))
  with pytest.raises(ValueError, match=r"peft_type='PROMPT_TUNING'; expected 'LORA' or 'IA3'"):
    peft_adapters.load_adapter(prompt_dir, TINY)
  _edit_config(good, use_dora=True)
  with pytest.raises(ValueError, match=r"use_dora=True is not supported; expected False"):
    peft_adapters.load_adapter(good, TINY)
  _edit_config(good, use_dora=False, target_modules=["q", "lm_head"])
  with pytest.raises(ValueError, match=r"target_modules has 'lm_head'; expected T5 module "
                                       r"names from"):
    peft_adapters.load_adapter(good, TINY)
  _edit_config(good, target_modules=["q", "k", "v"])
  with pytest.raises(ValueError, match=r"(?s)do not fit the model.*missing \(12\): "
                                       r"base_model.model.decoder.block.0.*k.lora_A.weight"):
    peft_adapters.load_adapter(good, TINY)
  _edit_config(good, target_modules=["q", "v"], r=32)
  with pytest.raises(ValueError, match=r"rank=32 is larger than the query kernel"):
    peft_adapters.load_adapter(good, TINY)
  _edit_config(good, r=3)
  with pytest.raises(ValueError, match=r"wrong shapes: .*lora_a: \(16, 4\), expected "
                                       r"\(16, 3\)"):
    peft_adapters.load_adapter(good, TINY)
