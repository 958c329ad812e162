"""Prompt design (data.prompt_design, eval.prompt_design): hard prompts, no training.

References: the rewritten inputs are compared with strings written out here
from the raw synthetic examples, and their tokens with the vocabulary's own
encoding of those strings.
"""
import json

import numpy as np
import pytest
import seqio

from prompt_tuning import paths
from prompt_tuning.data import prompt_design
from prompt_tuning.demo import synthetic, tasks as demo_tasks
from prompt_tuning.eval import prompt_design as design_eval

TASK = "taskless_demo_majority"
LENGTHS = {"inputs": 64, "targets": 8}


@pytest.fixture(scope="module")
def vocab():
  v = demo_tasks.demo_vocabulary()
  demo_tasks.register_demo_tasks(v)
  return v


def _rows(name, split):
  task = seqio.get_mixture_or_task(name)
  return list(task.get_dataset(LENGTHS, split=split, shuffle=False).as_numpy_iterator())


def test_a_template_writes_each_input_and_tokenizes_what_it_wrote(vocab):
  name = prompt_design.design_task(TASK, prompt_design.Design("majority: {inputs} ?"))
  raw = list(synthetic.examples("majority", "validation", with_task_word=False))
  rows = _rows(name, "validation")
  assert len(rows) == len(raw)
  for ex, want in zip(rows[:20], raw):
    text = f"majority: {want['inputs']} ?"
    assert ex["inputs_pretokenized"].decode() == text
    assert ex["inputs"].tolist() == vocab.encode(text) + [vocab.eos_id]
    assert ex["targets_pretokenized"].decode() == want["targets"]
  task = seqio.get_mixture_or_task(name)
  original = seqio.get_mixture_or_task(TASK)
  assert task.metric_fns == original.metric_fns and task.source is original.source


def test_demonstrations_are_k_distinct_train_examples_in_front(vocab):
  design = prompt_design.Design("{inputs}", num_shots=3, seed=5, separator=" ; ")
  demos = prompt_design.demonstrations(seqio.get_mixture_or_task(TASK), design)
  train = [f"{r['inputs']} {r['targets']}"
           for r in synthetic.examples("majority", "train", with_task_word=False)]
  chosen = np.random.default_rng(5).choice(len(train), 3, replace=False)
  assert demos == " ; ".join(train[i] for i in chosen)
  name = prompt_design.design_task(TASK, design)
  first = _rows(name, "validation")[0]["inputs_pretokenized"].decode()
  raw = next(synthetic.examples("majority", "validation", with_task_word=False))
  assert first == f"{demos} ; {raw['inputs']}"
  # {demos} places them; another seed draws others.
  placed = prompt_design.Design("Q: {inputs} | {demos}", num_shots=3, seed=5)
  assert placed.render("x", "D") == "Q: x | D"
  other = prompt_design.demonstrations(seqio.get_mixture_or_task(TASK),
                                       prompt_design.Design("{inputs}", num_shots=3, seed=6,
                                                            separator=" ; "))
  assert other != demos  # `design` but for the seed


@pytest.mark.parametrize("kwargs, match", [
    ({"template": ""}, "is empty"),
    ({"template": "   "}, "is empty"),
    ({"template": "majority:"}, "has 0 {inputs}"),
    ({"template": "{inputs} {inputs}"}, "has 2 {inputs}"),
    ({"num_shots": -1}, "num_shots=-1"),
    ({"num_shots": 2, "demo_template": "{inputs}"}, "both {inputs} and {targets}"),
])
def test_bad_designs_are_refused_naming_the_field(kwargs, match):
  with pytest.raises(ValueError, match=match):
    prompt_design.Design(**kwargs)


def test_a_mixture_or_too_many_shots_is_refused(vocab):
  with pytest.raises(ValueError, match="is a mixture"):
    prompt_design.design_task(demo_tasks.PRETRAIN_MIXTURE, prompt_design.Design())
  with pytest.raises(ValueError, match="num_shots=100000 but task"):
    prompt_design.design_task(TASK, prompt_design.Design(num_shots=100000))


def test_the_task_word_written_back_is_the_upper_bound_and_none_the_lower(vocab, tmp_path):
  # The demo model was pretrained with each input introduced by its task word.
  kwargs = dict(mixture_or_task_name=TASK, task_feature_lengths=LENGTHS,
                initial_checkpoint_path=paths.demo_model_dir(), batch_size=32,
                num_examples=64)
  upper = design_eval.evaluate_design(model_dir=str(tmp_path / "up"),
                                      template="majority: {inputs}", **kwargs)
  lower = design_eval.evaluate_design(model_dir=str(tmp_path / "low"), **kwargs)
  assert upper[f"{TASK}/accuracy"] >= 90.0 > lower[f"{TASK}/accuracy"] + 30
  written = json.loads(open(design_eval.result_path(str(tmp_path / "up"))).read())
  assert written["metrics"] == upper and written["design"]["template"] == "majority: {inputs}"
  assert written["example_input"].startswith("majority: ")
  assert written["model_params"] > 0
  lines = open(tmp_path / "up" / "eval" / "design_validation_predictions.jsonl").readlines()
  assert len(lines) == 64 and json.loads(lines[0])["input"].startswith("majority: ")
