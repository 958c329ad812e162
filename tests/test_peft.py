"""PEFT prompt-tuning adapters in and out, checked against the real `peft` library.

Our prompt, exported, loaded by `peft.PeftModel.from_pretrained` onto the Hugging
Face T5 that `save_hf` writes from the same frozen weights, must give the target
log-likelihoods our model gives; an adapter made and saved by `peft` itself must
give in ours the scores it gives in PEFT.
"""
import json
import os

import jax
import numpy as np
import pytest

import model_fixtures
from references import reference_library, target_log_likelihoods
from prompt_tuning import checkpoints, tree
from prompt_tuning.checkpoints import run_dir
from prompt_tuning.cli import export as export_cli, train as train_cli
from prompt_tuning.eval import prompt_eval
from prompt_tuning.models import Transformer, get_config, scoring
from prompt_tuning.prompts import export, initializers, peft, spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.testing import tiny

torch = reference_library("torch")
transformers = reference_library("transformers")
peft_lib = reference_library("peft")

P = 4
TINY = get_config("tiny", dropout_rate=0.0)
MODEL = Transformer(TINY, encoder_prompt=spec_lib.encoder_prompt(P))
TOKENS = np.array([[5, 6, 7, 8, 1, 0], [9, 10, 1, 0, 0, 0], [11, 12, 13, 1, 0, 0]], np.int32)
TARGETS = np.array([[3, 4, 1], [20, 1, 0], [30, 31, 1]], np.int32)


@pytest.fixture(scope="module")
def frozen_hf(tmp_path_factory):
  """(our params with a prompt, HF dir of the same frozen weights)."""
  params = model_fixtures.random_params(MODEL, seed=3)
  frozen = dict(params, encoder={k: v for k, v in params["encoder"].items() if k != "prompt"})
  directory = str(tmp_path_factory.mktemp("hf"))
  checkpoints.save_hf(TINY, frozen, directory, overwrite=True)
  return params, directory


def _our_scores(params, prompt):
  flat = tree.flatten(params)
  flat[PROMPT_PATH] = prompt
  batch = {"encoder_input_tokens": TOKENS, "decoder_target_tokens": TARGETS,
           "decoder_input_tokens": np.pad(TARGETS[:, :-1], ((0, 0), (1, 0)))}
  return np.asarray(jax.jit(scoring.score, static_argnums=0)(MODEL, tree.unflatten(flat),
                                                             batch))


def _peft_scores(peft_model):
  return target_log_likelihoods(peft_model, TOKENS, TARGETS)


def _base(directory):
  return transformers.T5ForConditionalGeneration.from_pretrained(directory).eval()


@pytest.mark.parametrize("submodules", [1, 2])
def test_our_prompt_exported_scores_the_same_in_peft(frozen_hf, tmp_path, submodules):
  params, hf_dir = frozen_hf
  prompt = np.asarray(params["encoder"]["prompt"]["prompt"])
  adapter = peft.save_adapter(str(tmp_path / "adapter"), prompt, num_heads=TINY.num_heads,
                              num_layers=TINY.num_encoder_layers, base_model_name_or_path=hf_dir,
                              num_transformer_submodules=submodules)
  loaded = peft_lib.PeftModel.from_pretrained(_base(hf_dir), adapter).eval()
  weights = loaded.prompt_encoder["default"].embedding.weight.detach().numpy()
  np.testing.assert_array_equal(weights[:P], prompt)  # loaded, not re-initialised
  ours = _our_scores(params, prompt)
  np.testing.assert_allclose(_peft_scores(loaded), ours, atol=1e-4, rtol=0)
  # ... and the prompt matters: another prompt gives other scores.
  other = _our_scores(params, prompt + 0.5)
  assert np.abs(other - ours).max() > 1e-3
  with open(os.path.join(adapter, peft.CONFIG_FILE)) as f:
    config = json.load(f)
  assert (config["peft_type"], config["task_type"], config["num_virtual_tokens"],
          config["token_dim"], config["num_transformer_submodules"]) == (
              "PROMPT_TUNING", "SEQ_2_SEQ_LM", P, 16, submodules)


def test_an_adapter_trained_with_peft_scores_the_same_in_ours(frozen_hf, tmp_path):
  params, hf_dir = frozen_hf
  # PEFT's own defaults for seq2seq: num_transformer_submodules = 2, so 2P rows.
  config = peft_lib.PromptTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=P)
  made = peft_lib.get_peft_model(_base(hf_dir), config)
  torch.manual_seed(0)
  with torch.no_grad():
    made.prompt_encoder["default"].embedding.weight.normal_(0.0, 0.5)
  made.save_pretrained(str(tmp_path / "peft_made"))
  with open(tmp_path / "peft_made" / peft.CONFIG_FILE) as f:
    assert json.load(f)["num_transformer_submodules"] == 2
  prompt, _ = peft.load_adapter(str(tmp_path / "peft_made"))
  assert prompt.shape == (P, 16)
  want = _peft_scores(peft_lib.PeftModel.from_pretrained(_base(hf_dir),
                                                         str(tmp_path / "peft_made")).eval())
  np.testing.assert_allclose(_our_scores(params, prompt), want, atol=1e-4, rtol=0)
  # Every reader of prompts takes the adapter directory.
  assert np.array_equal(export.read_prompt_file(str(tmp_path / "peft_made"))[PROMPT_PATH], prompt)
  init = initializers.from_file(str(tmp_path / "peft_made"))
  np.testing.assert_array_equal(init(jax.random.PRNGKey(0), (P, 16), None), prompt)


def test_bad_adapters_are_refused_naming_what_was_expected(tmp_path, frozen_hf):
  _, hf_dir = frozen_hf
  lora = peft_lib.get_peft_model(_base(hf_dir), peft_lib.LoraConfig(
      task_type="SEQ_2_SEQ_LM", r=2, target_modules=["q", "v"]))
  lora.save_pretrained(str(tmp_path / "lora"))
  with pytest.raises(ValueError, match=r"peft_type='LORA'; expected 'PROMPT_TUNING'"):
    peft.load_adapter(str(tmp_path / "lora"))
  good = peft.save_adapter(str(tmp_path / "good"), np.ones((3, 16), np.float32))
  with pytest.raises(FileExistsError, match="overwrite"):
    peft.save_adapter(good, np.ones((3, 16), np.float32))
  with pytest.raises(ValueError, match=r"one \[P, d_model\] prompt; got shape \(2, 3, 16\)"):
    peft.save_adapter(str(tmp_path / "bank"), np.ones((2, 3, 16)))
  with open(os.path.join(good, peft.CONFIG_FILE)) as f:
    config = json.load(f)
  with open(os.path.join(good, peft.CONFIG_FILE), "w") as f:
    json.dump(dict(config, num_virtual_tokens=5), f)
  with pytest.raises(ValueError, match=r"prompt_embeddings has shape \(3, 16\); expected "
                                       r"\[num_virtual_tokens \* num_transformer_submodules, "
                                       r"token_dim\] = \[5, 16\]"):
    peft.load_adapter(good)
  with open(os.path.join(good, peft.CONFIG_FILE), "w") as f:
    f.write("{not json")
  with pytest.raises(ValueError, match="adapter_config.json: not valid JSON"):
    peft.load_adapter(good)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  ckpt = tiny.write_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_t5")))
  run = str(tmp_path_factory.mktemp("run"))
  train_cli.run_train([
      "--gin_file=models/t5_1_1_tiny_prompt.gin", "--gin_file=prompts/random_uniform.gin",
      "--gin_file=runs/prompt_tune.gin", "--gin_file=runs/tiny_test.gin",
      f"--gin.MODEL_DIR='{run}'", f"--gin.INITIAL_CHECKPOINT_PATH='{ckpt}'",
      "--gin.TRAIN_STEPS=4", "--gin.EVAL_PERIOD=2", "--gin.loop.train.eval_num_examples=8"],
      progress=False)
  return run, ckpt


def test_export_command_writes_a_runs_prompt_as_peft_and_npy(tiny_run, tmp_path):
  run, ckpt = tiny_run
  best = run_dir.read_trainable(run, "best")[0][PROMPT_PATH]
  assert export_cli.main(["--model_dir", run, "--format", "peft", "--output_dir",
                          str(tmp_path / "peft")]) == 0
  prompt, config = peft.load_adapter(str(tmp_path / "peft"))
  np.testing.assert_array_equal(prompt, best)
  assert config["base_model_name_or_path"] == ckpt  # the run's frozen model
  assert (config["num_attention_heads"], config["num_layers"]) == (2, 2)
  assert export_cli.main(["--model_dir", run, "--checkpoint", "latest", "--format", "npy",
                          "--output_dir", str(tmp_path / "npy")]) == 0
  np.testing.assert_array_equal(np.load(tmp_path / "npy" / "encoder.prompt.prompt.npy"),
                                run_dir.read_trainable(run, "latest")[0][PROMPT_PATH])
  with pytest.raises(FileExistsError, match="--overwrite"):
    export_cli.main(["--model_dir", run, "--format", "npy", "--output_dir",
                     str(tmp_path / "npy")])
  # `prompt-tuning eval` takes the PEFT adapter and gives the best prompt's metrics.
  kwargs = dict(mixture_or_task_name=tiny.TINY_TASK,
                task_feature_lengths={"inputs": 8, "targets": 2}, initial_checkpoint_path=ckpt,
                batch_size=8, num_examples=8, register_tasks=tiny.register_tiny_task)
  from_run = prompt_eval.evaluate_prompt(model_dir=run, **kwargs)
  from_peft = prompt_eval.evaluate_prompt(prompt_file=str(tmp_path / "peft"),
                                          output_dir=str(tmp_path / "eval"), **kwargs)
  assert from_peft == from_run


def test_a_decoder_prompt_cannot_go_to_peft(tmp_path):
  flat = {PROMPT_PATH: np.ones((3, 16), np.float32),
          spec_lib.DECODER_PROMPT_PATH: np.ones((2, 16), np.float32)}
  export.write_npy_dir(str(tmp_path / "both"), tree.unflatten(flat))
  with pytest.raises(ValueError, match="holds a decoder prompt .* export it with --format=npy"):
    export_cli.export_prompt(output_dir=str(tmp_path / "out"), fmt="peft",
                             prompt_file=str(tmp_path / "both"))
