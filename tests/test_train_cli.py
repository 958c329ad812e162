"""The real gin stack (models/ + prompts/ + runs/prompt_tune.gin) end to end on the tiny T5.

runs/demo.gin is tested elsewhere; these runs check that each configs/prompts/ file
composes with a configs/models/ file and the paper run file through `prompt-tuning
train`, and that the prompt each one builds through gin is the one its definition says.
"""
import os

import gin
import jax
import numpy as np
import pytest

from prompt_tuning import tree
from prompt_tuning.cli import flags, train as train_cli
from prompt_tuning.prompts import export, initializers
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.testing import tiny as testing

STACK = ["--gin_file=models/t5_1_1_tiny_prompt.gin", None, "--gin_file=runs/prompt_tune.gin",
         "--gin_file=runs/tiny_test.gin"]
NPY = export.npy_name(PROMPT_PATH)


@pytest.fixture(scope="module")
def frozen_dir(tmp_path_factory):
  return testing.write_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_t5")))


def _train(model_dir, frozen_dir, prompt_file, *bindings):
  argv = [a or f"--gin_file=prompts/{prompt_file}" for a in STACK] + [
      f"--gin.MODEL_DIR='{model_dir}'", f"--gin.INITIAL_CHECKPOINT_PATH='{frozen_dir}'",
      *bindings]
  return train_cli.run_train(argv, progress=False)


def _prompt_from_gin(frozen_dir, prompt_file, *bindings):
  """The prompt the stack's PROMPT_INIT builds on the checkpoint's embedding table."""
  argv = [a or f"--gin_file=prompts/{prompt_file}" for a in STACK] + [
      "--gin.MODEL_DIR='/unused'", f"--gin.INITIAL_CHECKPOINT_PATH='{frozen_dir}'",
      *bindings]
  flags.setup_gin(flags.parse_flags(argv))
  name = prompt_file[:-len(".gin")]
  builder = getattr(initializers, {"from_class_labels": "class_labels"}.get(name, name))
  init = gin.get_configurable(builder)()
  return np.asarray(init(jax.random.PRNGKey(0), (gin.query_parameter("%PROMPT_LENGTH"), 16),
                         _table(frozen_dir)))


def _table(frozen_dir):
  from prompt_tuning import checkpoints  # pylint: disable=import-outside-toplevel
  return tree.flatten(checkpoints.load(frozen_dir)[1])["token_embedder/embedding"]


def test_class_label_stack_trains_evaluates_and_records_its_config(tmp_path, frozen_dir):
  result = _train(tmp_path, frozen_dir, "from_class_labels.gin",
                  "--gin.CLASS_LABELS=['animal', 'color']")
  assert result.step == 20 and result.best is not None
  assert [r["step"] for r in result.history if r["kind"] == "eval"] == [0, 10, 20]
  assert os.path.isfile(result.prompt_path)
  config = open(tmp_path / "config.gin").read()
  assert "sizes.get_config.name = 'tiny'" in config and "tiny_majority_v1" in config


@pytest.mark.parametrize("prompt_file,bindings", [
    ("from_class_labels.gin", ["--gin.CLASS_LABELS=['animal', 'red cat']"]),
    ("random_uniform.gin", []),
    ("sampled_vocab.gin", []),
    ("from_text.gin", ["--gin.PROMPT_TEXT='majority of red cat'"]),
])
def test_each_prompt_file_builds_its_prompt(frozen_dir, prompt_file, bindings):
  prompt, table = _prompt_from_gin(frozen_dir, prompt_file, *bindings), _table(frozen_dir)
  vocab = testing.WordVocabulary()
  assert prompt.shape == (4, 16)
  is_row = lambda row: np.abs(table - row).max(axis=1).min() < 1e-6
  if prompt_file == "random_uniform.gin":
    assert np.all(np.abs(prompt) <= 0.5) and not any(map(is_row, prompt))
    return
  rest = prompt
  if prompt_file == "from_class_labels.gin":
    np.testing.assert_allclose(prompt[0], table[vocab.encode("animal")].mean(0), rtol=1e-6)
    red, cat = vocab.encode("red cat")  # a two-word label: the mean of both rows
    np.testing.assert_allclose(prompt[1], (table[red] + table[cat]) / 2, rtol=1e-6)
    assert not is_row(prompt[1])
    rest = prompt[2:]
  if prompt_file == "from_text.gin":  # "majority" and "of" are not words: UNK
    np.testing.assert_array_equal(prompt, table[vocab.encode("majority of red cat")])
  assert all(map(is_row, rest))


def test_from_file_stack_reads_the_file_and_checks_its_shape(tmp_path, frozen_dir):
  saved = np.random.RandomState(0).uniform(-1, 1, (4, 16)).astype(np.float32)
  np.save(tmp_path / "p.npy", saved)
  flag = f"--gin.PROMPT_FILE='{tmp_path / 'p.npy'}'"
  np.testing.assert_array_equal(_prompt_from_gin(frozen_dir, "from_file.gin", flag), saved)
  with pytest.raises(ValueError, match=r"prompt has shape \(4, 16\); expected .* \(6, 16\)"):
    _prompt_from_gin(frozen_dir, "from_file.gin", flag, "--gin.PROMPT_LENGTH=6")


@pytest.mark.slow
def test_an_optax_optimizer_and_schedule_bound_from_gin(tmp_path, frozen_dir):
  result = _train(tmp_path, frozen_dir, "random_uniform.gin",
                  "--gin_file=runs/adamw_warmup.gin", "--gin.WARMUP_STEPS=2",
                  "--gin.LEARNING_RATE=0.05", "--gin.TRAIN_STEPS=4", "--gin.EVAL_PERIOD=0")
  assert result.step == 4
  operative = open(tmp_path / "operative_config.gin").read()
  assert "optax.adamw" in operative and "WARMUP_STEPS = 2" in operative
  assert "paper_adafactor" not in operative


def test_the_paper_stack_registers_superglue_tasks_before_looking_them_up(tmp_path,
                                                                          frozen_dir):
  # The paper command with the tiny checkpoint: the task is found (REGISTER_TASKS ran with
  # the models file's VOCABULARY), then the base config rejects the tiny weights.
  argv = ["--gin_file=models/t5_1_1_base_prompt.gin", "--gin_file=prompts/sampled_vocab.gin",
          "--gin_file=runs/prompt_tune.gin", f"--gin.MODEL_DIR='{tmp_path}'",
          "--gin.MIXTURE_OR_TASK_NAME='taskless_super_glue_rte_v102'",
          f"--gin.INITIAL_CHECKPOINT_PATH='{frozen_dir}'"]
  with pytest.raises(ValueError, match="do not match the (model )?config"):
    train_cli.run_train(argv, progress=False)
  with pytest.raises(ValueError, match="'taskless_super_glue_rtee_v102' is not a registered"):
    train_cli.run_train(argv[:-2] + ["--gin.MIXTURE_OR_TASK_NAME='taskless_super_glue_rtee_v102'",
                                      argv[-1]], progress=False)


def test_a_hf_dirs_spiece_model_overrides_the_gs_vocabulary():
  # README and the reproduction notebook point VOCABULARY at the HF dir's spiece.model.
  import seqio  # pylint: disable=import-outside-toplevel
  flags.setup_gin(flags.parse_flags([
      "--gin_file=models/t5_1_1_base_prompt.gin", "--gin_file=runs/prompt_tune.gin",
      "--gin.seqio.SentencePieceVocabulary.sentencepiece_model_file='/ckpt/spiece.model'"]))
  vocab = gin.get_configurable(seqio.SentencePieceVocabulary)()
  assert (vocab.sentencepiece_model_file, vocab.extra_ids) == ("/ckpt/spiece.model", 100)
