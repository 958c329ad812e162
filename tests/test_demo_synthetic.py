"""The demo's synthetic tasks: definitions, held-out splits, seqio registration."""
import numpy as np
import pytest
import seqio

from prompt_tuning.demo import synthetic
from prompt_tuning.demo import tasks as demo_tasks


def test_targets_follow_their_definitions():
  ex = {name: list(synthetic.examples(name, "validation"))[:50] for name in synthetic.TASKS}
  for name, rows in ex.items():
    for row in rows:
      word, rest = row["inputs"].split(": ", 1)
      words = rest.split()
      assert word == name and len(words) in synthetic.LENGTHS
      animals = sum(w in synthetic.ANIMALS for w in words)
      want = {"first": words[0], "last": words[-1],
              "count": synthetic.NUMBER_WORDS[len(words)],
              "majority": "animal" if animals > len(words) - animals else "color",
              "has_cat": "yes" if "cat" in words else "no"}[name]
      assert row["targets"] == want, row


def test_taskless_inputs_drop_only_the_task_word():
  with_word = list(synthetic.examples("majority", "test"))
  without = list(synthetic.examples("majority", "test", with_task_word=False))
  assert [r["targets"] for r in with_word] == [r["targets"] for r in without]
  assert all(a["inputs"] == "majority: " + b["inputs"] for a, b in zip(with_word, without))


def test_eval_splits_are_held_out_and_balanced_enough():
  train = set(synthetic.split_inputs("train"))
  for split in ("validation", "test"):
    inputs = synthetic.split_inputs(split)
    assert len(inputs) == synthetic.SPLIT_SIZES[split]
    assert not train.intersection(inputs)
  labels = [r["targets"] for r in synthetic.examples("majority", "validation")]
  assert 0.3 < np.mean([l == "animal" for l in labels]) < 0.7


def test_unknown_names_are_rejected():
  with pytest.raises(ValueError, match="unknown synthetic task 'sum'"):
    next(synthetic.examples("sum", "train"))
  with pytest.raises(ValueError, match="synthetic split 'dev'"):
    synthetic.split_inputs("dev")


def test_registered_tasks_tokenize_and_score():
  names = demo_tasks.register_demo_tasks(seqio.ByteVocabulary())
  assert "taskless_demo_majority" in names and "demo_first" in names
  task = seqio.get_mixture_or_task("taskless_demo_majority")
  ex = next(task.get_dataset({"inputs": 64, "targets": 16}, split="validation",
                             shuffle=False).as_numpy_iterator())
  assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1  # EOS appended
  (metric,) = task.metric_fns
  got = metric(["animal", "color", "color", "animal"], ["animal", "color", "dog", "color"])
  assert got == {"accuracy": 50.0, "illegal_label_rate": 25.0}
  assert len(seqio.get_mixture_or_task(demo_tasks.PRETRAIN_MIXTURE).tasks) == 5


def test_a_variant_draws_other_lengths_held_out_and_leaves_the_pretraining_data():
  long_val = synthetic.split_inputs("validation", (9, 11))
  assert {len(w) for w in long_val} == {9, 11}
  assert not set(long_val) & set(synthetic.split_inputs("train", (9, 11)))
  assert synthetic.split_inputs("train") == synthetic.split_inputs("train", synthetic.LENGTHS)
  assert {len(w) for w in synthetic.split_inputs("train")} == set(synthetic.LENGTHS)
  with pytest.raises(ValueError, match=r"input lengths \(4,\); expected odd"):
    synthetic.split_inputs("train", (4,))
