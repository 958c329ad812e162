"""Training the methods: only their params change and have optimizer state; runs save
only them; each configs/methods/ file trains through `prompt-tuning train`.

The train-step checks use the demo's frozen tiny T5 1.1 (d_model 64) and its
taskless task; the CLI runs use the random tiny T5 and runs/tiny_test.gin.
"""
import json
import os

import gin
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from prompt_tuning import losses, paths, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, peft_adapters, run_dir
from prompt_tuning.cli import configurables, export as export_cli, train as train_cli
from prompt_tuning.compare import methods as compare_methods, runs as compare_runs
from prompt_tuning.data import inputs
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.models import Transformer, adapter_params, scan
from prompt_tuning.models.adapters import (AdapterSpec, LoraSpec, PrefixSpec, for_method,
                                           METHOD_NAMES)
from prompt_tuning.prompts import initializers, spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.testing import tiny
from prompt_tuning.train import loop, optim, step as step_lib, trainable as trainable_lib
from prompt_tuning.train.state import TrainState

MODEL = paths.demo_model_dir()
TASK = "taskless_demo_majority"
LENGTHS = {"inputs": 16, "targets": 8}
SPECS = {
    "lora": AdapterSpec(lora=LoraSpec(rank=2, alpha=4, targets=("query", "value", "wo"))),
    "ia3": AdapterSpec(ia3=True),
    "prefix": AdapterSpec(prefix=PrefixSpec(3, hidden_dim=8)),
    "deep_prompts": AdapterSpec(deep_prompts=True),
}


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


def _three_steps(spec, scan_layers=False, microbatches=None):
  """(state, {path: value} before, sorted changed paths, model) after 3 jitted steps."""
  _register()
  config, frozen = frozen_lib.load_frozen(MODEL, dropout_rate=0.1)
  config = config.replace(scan_layers=scan_layers, remat_policy="full" if scan_layers
                          else "none")
  frozen = scan.to_layout(frozen, config)
  prompt = spec_lib.encoder_prompt(4, init=initializers.sampled_vocab(100))
  model = Transformer(config, encoder_prompt=prompt if spec.deep_prompts else None,
                      adapters=spec)
  params = frozen
  if spec.deep_prompts:
    params = frozen_lib.with_prompts(frozen, {PROMPT_PATH: initializers.make_prompt(
        prompt, frozen_lib.embedding_table(frozen), jax.random.PRNGKey(0))})
  params = tree.merge(params, adapter_params.init_adapter_params(model, frozen,
                                                                 jax.random.PRNGKey(2)))
  before = {k: np.array(v) for k, v in tree.flatten(params).items()}
  trainable, frozen = trainable_lib.split(
      params, spec.trainable_regex([s.path for s in model.prompt_specs]))
  tx = optim.paper_adafactor(learning_rate=1e-2)
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(1))
  step = step_lib.jit_train_step(model, tx, losses.LossConfig(), microbatches)
  batches = inputs.train_batches(TASK, LENGTHS, 8, seed=0)
  for _ in range(3):
    state, _ = step(state, frozen, next(batches))
  after = tree.flatten(tree.merge(state.trainable, frozen))
  assert sorted(after) == sorted(before)
  changed = sorted(k for k in before if not np.array_equal(before[k], np.asarray(after[k])))
  return state, before, changed, model


def test_only_the_methods_params_change_and_only_they_have_optimizer_state():
  # One model holding every method (one compile): each method's params are where that
  # method alone puts them, all of them move, no frozen weight does.
  spec = AdapterSpec(lora=SPECS["lora"].lora, ia3=True, prefix=SPECS["prefix"].prefix,
                     deep_prompts=True)
  state, before, changed, model = _three_steps(spec)
  method = adapter_params.method_paths(model)
  assert method and changed == method
  assert sorted(tree.flatten(state.trainable)) == method
  covered = set()
  for name, alone in SPECS.items():
    prompt = spec_lib.encoder_prompt(4) if alone.deep_prompts else None
    paths_alone = adapter_params.method_paths(Transformer(model.config, encoder_prompt=prompt,
                                                          adapters=alone))
    assert paths_alone and set(paths_alone) <= set(method), name
    assert all(spec.method_of(p) == alone.method_of(p) for p in paths_alone), name
    covered |= set(paths_alone)
  assert covered == set(method)
  size = sum(before[p].size for p in method)
  opt = sum(np.size(x) for x in jax.tree_util.tree_leaves(state.opt_state))
  assert opt <= 2 * size + 8, (opt, size)
  assert PROMPT_PATH in changed  # deep prompts' layer 0 is the encoder prompt


def test_with_scan_layers_remat_and_microbatches_only_the_methods_params_change():
  spec = AdapterSpec(lora=LoraSpec(2), ia3=True, prefix=PrefixSpec(2, hidden_dim=4))
  state, _, changed, model = _three_steps(spec, scan_layers=True, microbatches=2)
  assert any(p.startswith("encoder/layers/") for p in changed)
  assert changed == adapter_params.method_paths(model) == sorted(
      tree.flatten(state.trainable))


def test_a_trainable_regex_that_contradicts_the_method_is_refused():
  model = Transformer(tiny.tiny_config(), adapters=SPECS["lora"])
  params = tree.unflatten(adapter_params.abstract_params(model))  # shapes are enough
  spec = SPECS["lora"]
  trainable_lib.check_adapters(params, None, spec)
  trainable_lib.check_adapters(params, spec.trainable_regex(), spec)
  with pytest.raises(ValueError, match=r"TRAINABLE_REGEX='encoder/.\*' leaves 20 params of "
                                       r"the methods \(lora\) frozen, e.g. \['decoder/"):
    trainable_lib.check_adapters(params, "encoder/.*", spec)
  with pytest.raises(ValueError, match=r"also trains 2 pretrained weights, e.g. \['encoder/"
                                       r"layers_0/pre_attention_layer_norm/scale'"):
    trainable_lib.check_adapters(
        params, spec.trainable_regex() + r"|encoder/layers_\d/pre_attention_layer_norm/scale",
        spec)


def test_the_loop_refuses_a_contradicting_regex_and_another_method_on_resume(tmp_path):
  kwargs = dict(mixture_or_task_name=TASK, task_feature_lengths=LENGTHS, train_steps=2,
                batch_size=8, initial_checkpoint_path=MODEL, prompt_length=0,
                eval_period=0, register_tasks=_register, progress=False, log_period=1)
  with pytest.raises(ValueError, match=r"TRAINABLE_REGEX='\.\*kernel\|.*' also trains 37 pretrained"):
    loop.train(model_dir=str(tmp_path / "a"), adapters=SPECS["ia3"],
               trainable_regex=".*kernel|.*ia3_.*", **kwargs)
  assert not os.path.exists(tmp_path / "a" / "checkpoint_0")
  result = loop.train(model_dir=str(tmp_path / "b"), adapters=SPECS["ia3"], **kwargs)
  assert result.step == 2
  with pytest.raises(loop.IncompatibleRunError, match=r"trained with ADAPTERS=\{.*'ia3': "
                                                      r"True.*not \{.*'lora': \{'rank': 2"):
    loop.train(model_dir=str(tmp_path / "b"), adapters=SPECS["lora"],
               **dict(kwargs, train_steps=3))


def test_unknown_method_names_are_refused_with_the_closest():
  assert for_method("prompt_tuning") is None
  assert [for_method(m).methods for m in METHOD_NAMES[1:]] == [(m,) for m in METHOD_NAMES[1:]]
  with pytest.raises(ValueError, match=r"unknown method 'lroa'; expected one of \["
                                       r"'prompt_tuning', 'lora', 'ia3', 'prefix', "
                                       r"'deep_prompts'\]. Did you mean 'lora'\?"):
    for_method("lroa")
  with pytest.raises(ValueError, match=r"method 'ia3' got a lora spec .*only method 'lora'"):
    for_method("ia3", lora=LoraSpec())
  spec = AdapterSpec(lora=LoraSpec(4, 8.0, ("key", "out")), prefix=PrefixSpec(2), ia3=True)
  assert AdapterSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


# ------------------------------------------------------------- the methods' gin files

# (method, its LEARNING_RATE, whether it trains a soft prompt too)
METHOD_FILES = [("lora", 1e-3, False), ("ia3", 3e-3, False), ("prefix", 1e-3, False),
                ("deep_prompts", 0.3, True), ("prompt_tuning", 0.3, True)]
# What each file binds, as `for_method`'s arguments (the files' own sizes).
METHOD_SPECS = {"lora": {"lora": LoraSpec(rank=8, alpha=16, targets=("query", "value"))},
                "prefix": {"prefix": PrefixSpec(10, reparameterize=True, hidden_dim=512)}}
# The CLI run of each file takes ~25 s (its own compiles, evaluation included): CI trains
# an adapter alone (LoRA, also exported as PEFT) and an adapter with a soft prompt (deep
# prompts); `--full-size` trains all five. Every file's bindings are checked without
# training by test_each_method_file_goes_on_top_of_the_demo_run; IA3's PEFT export by
# tests/test_peft_adapters.py; methods/prompt_tuning.gin trains in tests/test_compare.py.
CLI_SAMPLE = ("lora", "deep_prompts")


@pytest.fixture(scope="module")
def frozen_dir(tmp_path_factory):
  return tiny.write_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_t5")))


def _stored_state_names(model_dir, step):
  metadata = ocp.StandardCheckpointer().metadata(
      os.path.join(model_dir, f"checkpoint_{step}", "state"))
  return sorted(getattr(metadata, "item_metadata", metadata).keys())


@pytest.mark.parametrize("method,learning_rate,with_prompt", [
    pytest.param(*case, marks=() if case[0] in CLI_SAMPLE else pytest.mark.full_size)
    for case in METHOD_FILES])
def test_each_method_file_trains_through_the_cli(tmp_path, frozen_dir, method, learning_rate,
                                                 with_prompt):
  prompts = ["--gin_file=prompts/random_uniform.gin"] if with_prompt else []
  # The method file comes last, after the run's files (runs/tiny_test.gin included).
  argv = ["--gin_file=models/t5_1_1_tiny_prompt.gin", *prompts,
          "--gin_file=runs/prompt_tune.gin", "--gin_file=runs/tiny_test.gin",
          f"--gin_file=methods/{method}.gin",
          f"--gin.MODEL_DIR='{tmp_path}'", f"--gin.INITIAL_CHECKPOINT_PATH='{frozen_dir}'",
          "--gin.TRAIN_STEPS=2", "--gin.EVAL_PERIOD=2"]
  result = train_cli.run_train(argv, progress=False)
  assert result.step == 2
  assert gin.query_parameter("%METHOD") == method
  assert gin.query_parameter("%LEARNING_RATE") == learning_rate
  meta = run_dir.read_meta(str(tmp_path))
  spec = AdapterSpec.from_json(meta["adapters"]) if meta["adapters"] else None
  assert spec == for_method(method, **METHOD_SPECS.get(method, {}))
  length = gin.query_parameter("%PROMPT_LENGTH")
  assert length == {"deep_prompts": 20, "prompt_tuning": 4}.get(method, 0)
  model = Transformer(tiny.tiny_config(),
                      encoder_prompt=spec_lib.encoder_prompt(length) if with_prompt else None,
                      adapters=spec)
  want = (adapter_params.method_paths(model) if spec is not None else [PROMPT_PATH])
  for checkpoint in ("latest", "best"):
    assert sorted(run_dir.read_trainable(str(tmp_path), checkpoint)[0]) == want
  stored = _stored_state_names(str(tmp_path), 2)
  params = sorted(n[len("trainable/"):] for n in stored if n.startswith("trainable/"))
  assert params == want  # the checkpoint holds only the method's params ...
  assert all(n.startswith(("trainable/", "opt_state/")) or "/" not in n for n in stored), stored
  assert meta["initial_checkpoint_path"] == frozen_dir  # ... and names the frozen model
  # `prompt-tuning compare` reads the method's row from this run's files. LoRA
  # (methods/lora.gin: r = 8 on query and value): r * (d_in + d_out) per adapted matrix,
  # 2 per encoder layer and 4 per decoder layer (self- and cross-attention).
  row = compare_runs.train_row(compare_methods.parse_methods(method)[0], str(tmp_path), None)
  assert row["score"] == run_dir.load_best(str(tmp_path))["value"]
  config = tiny.tiny_config()
  if method == "lora":
    adapted = 2 * config.num_encoder_layers + 4 * config.num_decoder_layers
    assert row["trainable_params"] == adapted * 8 * (
        config.emb_dim + config.num_heads * config.head_dim)
  elif method == "prompt_tuning":
    assert row["trainable_params"] == 4 * config.emb_dim
  if method != "prefix":  # a prefix's MLP is folded away for serving
    assert row["inference_params"] == row["trainable_params"]
  # `prompt-tuning export --format=peft` writes LoRA and IA3 runs as PEFT adapters.
  out = str(tmp_path / "peft")
  argv = ["--model_dir", str(tmp_path), "--format", "peft", "--output_dir", out]
  if method == "prompt_tuning":  # a PEFT prompt-tuning adapter, as before
    assert export_cli.main(argv) == 0 and os.path.isfile(os.path.join(out, "adapter_config.json"))
    return
  if method not in ("lora", "ia3"):
    with pytest.raises(ValueError, match=rf"trained with {method}; PEFT adapters are written "
                                         r"for LoRA or IA3 alone. .*--format=npy"):
      export_cli.main(argv)
    return
  assert export_cli.main(argv) == 0
  read_spec, read = peft_adapters.load_adapter(out, tiny.tiny_config())
  assert read_spec == spec
  best = run_dir.read_trainable(str(tmp_path), "best")[0]
  assert sorted(tree.flatten(read)) == sorted(best)
  for path, value in tree.flatten(read).items():
    np.testing.assert_array_equal(value, best[path], err_msg=path)
  with open(os.path.join(out, "adapter_config.json")) as f:
    assert json.load(f)["base_model_name_or_path"] == frozen_dir


@pytest.mark.parametrize("method,learning_rate", [(m, lr) for m, lr, _ in METHOD_FILES])
def test_each_method_file_goes_on_top_of_the_demo_run(method, learning_rate):
  configurables.register()
  gin.clear_config()
  gin.add_config_file_search_path(paths.config_dir())
  gin.parse_config_files_and_bindings(["runs/demo.gin", f"methods/{method}.gin"], [],
                                      finalize_config=False)
  assert gin.query_parameter("%METHOD") == method
  assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == "taskless_demo_majority"
  assert gin.query_parameter("%LEARNING_RATE") == learning_rate
  spec = gin.get_configurable(for_method)()
  assert (spec.methods if spec else ()) == (() if method == "prompt_tuning" else (method,))
  assert spec == for_method(method, **METHOD_SPECS.get(method, {}))
  # A method without a soft prompt sets PROMPT_LENGTH to 0; deep prompts sets its own.
  if method != "prompt_tuning":
    assert gin.query_parameter("%PROMPT_LENGTH") == {"deep_prompts": 20}.get(method, 0)
