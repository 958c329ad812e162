"""`prompt-tuning eval` / `evaluate_prompt`: a saved prompt scores what the run scored."""
import json
import os

import numpy as np
import pytest

from prompt_tuning import paths
from prompt_tuning.checkpoints import run_dir
from prompt_tuning.cli import eval as eval_cli, train as train_cli
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.eval import prompt_eval
from prompt_tuning.eval.evaluator import Evaluator
from prompt_tuning.prompts import export, initializers, spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.train import loop, trainable as trainable_lib

TASK = "taskless_demo_majority"
LENGTHS = {"inputs": 16, "targets": 8}


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return loop.train(
      model_dir=str(tmp_path_factory.mktemp("run")), mixture_or_task_name=TASK,
      task_feature_lengths=LENGTHS, train_steps=20, batch_size=16,
      initial_checkpoint_path=paths.demo_model_dir(), prompt_length=4,
      prompt_init=initializers.sampled_vocab(100), eval_period=10, eval_num_examples=48,
      eval_batch_size=16, register_tasks=_register, progress=False, log_period=10)


def _eval_flags(model_dir, *extra):
  return ["--gin_file=runs/demo.gin", "--gin_file=runs/prompt_eval.gin",
          f"--gin.MODEL_DIR='{model_dir}'", "--gin.PROMPT_LENGTH=4", "--gin.BATCH_SIZE=16",
          "--gin.prompt_eval.evaluate_prompt.num_examples=48", *extra]


def test_cli_eval_of_the_best_prompt_reproduces_the_runs_best_metrics(run, capsys):
  assert eval_cli.main(_eval_flags(run.model_dir)) == 0
  printed = capsys.readouterr().out
  saved = json.load(open(os.path.join(run.model_dir, "eval", "eval_validation_best.json")))
  key = run.best["metric"]
  assert saved["metrics"][key] == pytest.approx(run.best["value"], abs=1e-9)
  assert f"{key}: " in printed
  assert saved["source"] == os.path.join(run.model_dir, "best")


def test_eval_of_a_step_and_of_a_prompt_file(run, tmp_path):
  at_10 = next(r for r in run.history if r["kind"] == "eval" and r["step"] == 10)
  kwargs = dict(mixture_or_task_name=TASK, task_feature_lengths=LENGTHS,
                initial_checkpoint_path=paths.demo_model_dir(), batch_size=16,
                num_examples=48, register_tasks=_register)
  by_step = prompt_eval.evaluate_prompt(model_dir=run.model_dir, checkpoint=10, **kwargs)
  key = f"{TASK}/accuracy"
  assert by_step[key] == pytest.approx(at_10[key], abs=1e-9)
  npy = os.path.join(run.model_dir, "numpy_checkpoints", "checkpoint_10",
                     export.npy_name(PROMPT_PATH))
  by_file = prompt_eval.evaluate_prompt(prompt_file=npy, output_dir=str(tmp_path), **kwargs)
  assert by_file[key] == by_step[key]
  assert os.path.isfile(tmp_path / f"eval_validation_{os.path.basename(npy)}.json")


def test_eval_errors_name_what_is_missing(run, tmp_path):
  with pytest.raises(ValueError, match=r"EVAL_CHECKPOINT=7: .* saved steps: \[10, 20\]"):
    prompt_eval.read_prompts(run.model_dir, 7)
  with pytest.raises(ValueError, match="EVAL_PROMPT_FILE='nope.npy': no such file"):
    prompt_eval.read_prompts(prompt_file="nope.npy")
  with pytest.raises(ValueError, match="is not a directory"):
    prompt_eval.read_prompts(str(tmp_path / "missing"))
  np.save(tmp_path / "wide.npy", np.zeros((4, 7), np.float32))
  with pytest.raises(ValueError, match=r"wide.npy: encoder/prompt/prompt: prompt has shape "
                                       r"\(4, 7\); expected \(P, d_model\) = \(4, 64\)"):
    prompt_eval.evaluate_prompt(
        mixture_or_task_name=TASK, task_feature_lengths=LENGTHS, register_tasks=_register,
        initial_checkpoint_path=paths.demo_model_dir(), prompt_file=str(tmp_path / "wide.npy"))


def test_a_failing_command_writes_nothing_into_a_runs_dir(run):
  path = os.path.join(run.model_dir, "config.gin")
  with open(path, "w") as f:
    f.write("# the good run's config\n")
  before = sorted(os.listdir(run.model_dir))
  for _ in range(2):  # run twice: no new config_<time>.gin either time
    with pytest.raises(ValueError, match="MIXTURE_OR_TASK_NAME='no_such_task'"):
      train_cli.run_train(["--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{run.model_dir}'",
                           "--gin.MIXTURE_OR_TASK_NAME='no_such_task'"], progress=False)
  assert open(path).read() == "# the good run's config\n"
  assert sorted(os.listdir(run.model_dir)) == before


def test_resume_drops_records_logged_after_the_last_checkpoint(tmp_path):
  kwargs = dict(model_dir=str(tmp_path), mixture_or_task_name=TASK,
                task_feature_lengths=LENGTHS, batch_size=8,
                initial_checkpoint_path=paths.demo_model_dir(), prompt_length=4,
                prompt_init=initializers.sampled_vocab(100), eval_period=0,
                checkpoint_period=10, register_tasks=_register, progress=False,
                log_period=5)
  loop.train(train_steps=10, **kwargs)
  with open(tmp_path / run_dir.METRICS_FILE, "a") as f:  # as if killed at step 15
    f.write(json.dumps({"step": 15, "kind": "train", "loss": -1.0}) + "\n")
  result = loop.train(train_steps=20, **kwargs)
  records = list(map(json.loads, open(tmp_path / run_dir.METRICS_FILE)))
  assert [r["step"] for r in records if r["kind"] == "train"] == [5, 10, 15, 20]
  # Each start records what trains (step 0, then the resumed step 10).
  assert [r["step"] for r in records if r["kind"] == "params"] == [0, 10]
  assert all(r["loss"] > 0 for r in result.history if r["kind"] == "train")


def _hf_reference(params, encoder_tokens, targets, prompt):
  """transformers T5 fed the prompt as inputs_embeds: target log-likelihoods and
  greedy answers, as an independent check of our scoring and decoding."""
  import tempfile  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  from prompt_tuning import checkpoints  # pylint: disable=import-outside-toplevel
  from prompt_tuning.testing import tiny as testing  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as directory:
    checkpoints.save_hf(testing.tiny_config(), params, directory, drop_prompt=True)
    hf = transformers.T5ForConditionalGeneration.from_pretrained(directory).eval()
  table = np.asarray(params["token_embedder"]["embedding"])
  batch = len(encoder_tokens)
  embeds = np.concatenate([np.broadcast_to(prompt, (batch,) + prompt.shape),
                           table[encoder_tokens]], 1)
  mask = np.concatenate([np.ones((batch, len(prompt))), encoder_tokens > 0], 1)
  kwargs = dict(inputs_embeds=torch.tensor(embeds), attention_mask=torch.tensor(mask))
  decoder_inputs = np.pad(targets[:, :-1], ((0, 0), (1, 0)))
  with torch.no_grad():
    logits = hf(**kwargs, decoder_input_ids=torch.tensor(decoder_inputs, dtype=torch.long)
                ).logits.double()
    answers = hf.generate(**kwargs, max_new_tokens=targets.shape[1], do_sample=False,
                          num_beams=1).numpy()[:, 1:]
  log_probs = torch.log_softmax(logits, -1).numpy()
  picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
  return (picked * (targets > 0)).sum(-1), answers


def test_evaluator_feeds_seqio_decodes_and_scores_in_example_order():
  import jax  # pylint: disable=import-outside-toplevel
  import seqio  # pylint: disable=import-outside-toplevel
  from references import reference_library  # pylint: disable=import-outside-toplevel
  from prompt_tuning.models import Transformer, init_params  # pylint: disable=import-outside-toplevel
  from prompt_tuning.testing import tiny as testing  # pylint: disable=import-outside-toplevel
  reference_library("torch")
  reference_library("transformers")
  name = testing.register_tiny_task("tiny_majority_scored_v1", {"train": 8, "validation": 13},
                                    with_score_metric=True)
  model = Transformer(testing.tiny_config(), encoder_prompt=spec_lib.encoder_prompt(2))
  params = init_params(model, jax.random.PRNGKey(3))
  trainable, frozen = trainable_lib.split(params)
  lengths = {"inputs": 8, "targets": 2}
  # batch 5 over 13 examples: the last batch is padded; results must not depend on it.
  results = Evaluator(model, name, lengths, 5).evaluate(trainable, frozen, step=0)
  ds = seqio.get_dataset(name, lengths, seqio.EncDecFeatureConverter(pack=False),
                         "validation").batch(13).get_single_element()
  tokens = ds["encoder_input_tokens"].numpy()
  targets = ds["decoder_target_tokens"].numpy()
  # The references: transformers' log-likelihoods and greedy answers (not our code).
  scores, answers = _hf_reference(params, tokens, targets,
                                  np.asarray(params["encoder"]["prompt"]["prompt"]))
  assert results[f"{name}/mean_target_score"] == pytest.approx(scores.mean(), rel=1e-4)
  assert results[f"{name}/first_target_score"] == pytest.approx(scores[0], rel=1e-4)
  assert results[f"{name}/last_target_score"] == pytest.approx(scores[-1], rel=1e-4)
  assert scores[0] != pytest.approx(scores[-1], rel=1e-3)  # the check can tell them apart
  vocab = testing.WordVocabulary()
  preds = [vocab.decode([int(i) for i in row]) for row in answers]
  gold = [vocab.decode([int(i) for i in row]) for row in targets]
  want_acc = 100.0 * np.mean([p == t for p, t in zip(preds, gold)])
  assert results[f"{name}/accuracy"] == pytest.approx(want_acc)
  assert len(set(preds)) > 1 or want_acc not in (0.0, 100.0)  # a real mix, not a constant
