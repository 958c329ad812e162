"""A prompt library (SPoT's sources) and continual learning over it, on the demo model.

Two short runs (4 steps) on the demo's frozen model, majority and has_cat, are the
entries; the library is read back as a bank, ranked (similarity and zero-shot),
used as PROMPT_INIT, and grown by one task while the other's predictions stay
bit-identical.
"""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from prompt_tuning import cli, paths
from prompt_tuning.checkpoints import bank as bank_lib
from prompt_tuning.demo import synthetic, tasks as demo_tasks
from prompt_tuning.infer import predictor
from prompt_tuning.library import store
from prompt_tuning.prompts import export, initializers
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.train import optim
from prompt_tuning.transfer import continual, ranking

MODEL = paths.demo_model_dir()
LENGTHS = {"inputs": 16, "targets": 8}
A, B = "taskless_demo_majority", "taskless_demo_has_cat"


def _register():
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())


def _train_kwargs(model_dir, task, labels, **overrides):
  kwargs = dict(model_dir=str(model_dir), mixture_or_task_name=task,
                task_feature_lengths=LENGTHS, train_steps=4, batch_size=8,
                initial_checkpoint_path=MODEL, prompt_length=4,
                prompt_init=initializers.class_labels(labels, demo_tasks.demo_vocabulary(),
                                                      initializers.sampled_vocab(128)),
                optimizer=optim.paper_adafactor(0.3), eval_period=4, eval_num_examples=16,
                eval_at_start=False, progress=False, log_period=2, register_tasks=_register)
  kwargs.update(overrides)
  return kwargs


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
  """Tunes A into a library, infers A's inputs, tunes B in, infers A's and B's again."""
  root = tmp_path_factory.mktemp("library")
  library = str(root / "library")
  lines = [{"inputs": " ".join(w), "task": A} for w in synthetic.split_inputs("validation")[:12]]
  lines += [{"inputs": " ".join(w), "task": B} for w in synthetic.split_inputs("test")[:12]]
  inputs = root / "inputs.jsonl"
  inputs.write_text("".join(json.dumps(line) + "\n" for line in lines))
  only_a = root / "only_a.jsonl"
  only_a.write_text("".join(json.dumps(line) + "\n" for line in lines[:12]))

  def infer(source, path, name):
    out = str(root / name)
    predictor.infer(initial_checkpoint_path=MODEL, prompts=source, output_file=out,
                    task_feature_lengths=LENGTHS, input_file=str(path), batch_size=8,
                    progress=False, register_tasks=_register)
    return [json.loads(line) for line in open(out)]

  run_a, entry_a = continual.tune_into_library(
      library, **_train_kwargs(root / "a", A, ["animal", "color"]))
  files = lambda: {n: hashlib.sha256(open(os.path.join(entry_a.directory, n), "rb").read())
                   .hexdigest() for n in sorted(os.listdir(entry_a.directory))}
  before_files = files()
  before = infer(library, only_a, "before.jsonl")
  run_b, entry_b = continual.tune_into_library(
      library, **_train_kwargs(root / "b", B, ["no", "yes"]))
  after = infer(library, inputs, "after.jsonl")
  b_on_a = infer(entry_b.directory, only_a, "b_on_a.jsonl")
  return dict(root=root, library=library, run_a=run_a, run_b=run_b, entry_a=entry_a,
              entry_b=entry_b, before=before, after=after, b_on_a=b_on_a,
              before_files=before_files, after_files=files())


def test_adding_a_task_leaves_the_other_task_bit_identical(grown):
  before, after = grown["before"], grown["after"]
  assert len(before) == 12 and len(after) == 24
  for old, new in zip(before, after[:12]):
    assert new["prediction"] == old["prediction"] and new["score"] == old["score"]
  assert grown["after_files"] == grown["before_files"]  # A's entry untouched on disk
  # Not vacuous: B's prompt answers A's inputs differently, so serving A's lines
  # with B's prompt (a mixed-up prompt id) would show above.
  assert [r["prediction"] for r in grown["b_on_a"]] != [r["prediction"] for r in before]


def test_an_entry_records_its_run_and_the_library_reads_as_a_bank(grown):
  entry_a = store.get(grown["library"], A)
  assert entry_a.task == A and entry_a.prompt_length == 4
  assert entry_a.model["d_model"] == 64 and entry_a.model["vocab_size"] == 128
  assert entry_a.model["initial_checkpoint_path"] == os.path.abspath(MODEL)
  assert (entry_a.metric, entry_a.value) == (grown["run_a"].best["metric"],
                                             grown["run_a"].best["value"])
  np.testing.assert_array_equal(entry_a.prompt(), np.load(grown["run_a"].prompt_path))
  # a hidden, half-written entry is no bank member
  os.makedirs(os.path.join(grown["library"], ".x.tmp-1"))
  try:
    bank = bank_lib.load_bank(grown["library"])
  finally:
    os.rmdir(os.path.join(grown["library"], ".x.tmp-1"))
  assert bank.names == sorted([A, B]) and bank.encoder.shape == (2, 4, 64)
  np.testing.assert_array_equal(bank.encoder[bank.index(A)], entry_a.prompt())


def test_existing_entries_unknown_names_and_duplicate_tasks_are_refused(grown):
  library, run_a = grown["library"], grown["run_a"].model_dir
  with pytest.raises(ValueError, match=f"{A} exists; expected a new entry name"):
    store.add(library, run_a)
  with pytest.raises(ValueError, match=r"tasks with more than one entry: .*expected one "
                                       "entry per task"):
    store.add(library, run_a, name="majority_again")
  assert sorted(os.listdir(library)) == sorted([A, B])  # nothing left behind
  with pytest.raises(ValueError, match=r"no entry 'taskless_demo_majorty'.*Did you mean "
                                       f"'{A}'"):
    store.get(library, "taskless_demo_majorty")
  with pytest.raises(ValueError, match="expected each name once"):
    bank_lib.load_bank([f"x={grown['entry_a'].directory}", f"x={grown['entry_b'].directory}"])


def test_overwrite_replaces_an_entry_atomically(grown, tmp_path):
  copy = str(tmp_path / "copy")
  shutil.copytree(grown["library"], copy)
  shutil.rmtree(os.path.join(copy, B))
  entry = store.add(copy, grown["run_a"].model_dir, checkpoint="latest", overwrite=True)
  assert entry.value is None  # a step's prompt, not the best evaluation's
  assert sorted(os.listdir(copy)) == [A]


def test_from_library_initialises_and_refuses_another_model_or_width(grown, tmp_path):
  library = grown["library"]
  table = np.zeros((128, 64), np.float32)
  got = store.from_library(library, A, MODEL)(None, (4, 64), table)
  np.testing.assert_array_equal(got, grown["entry_a"].prompt())
  with pytest.raises(ValueError, match=r"entry 'taskless_demo_majority'.*d_model: expected "
                                       "32, the entry's is 64"):
    store.from_library(library, A)(None, (4, 32), np.zeros((128, 32)))
  with pytest.raises(ValueError, match=r"vocab_size: expected 100, the entry's is 128"):
    store.from_library(library, A)(None, (4, 64), np.zeros((100, 64)))
  with pytest.raises(ValueError, match=r"INITIAL_CHECKPOINT_PATH: expected '/elsewhere', "
                                       "the entry's is"):
    store.from_library(library, A, "/elsewhere")(None, (4, 64), table)
  with pytest.raises(ValueError, match="prompt length 4; expected PROMPT_LENGTH=6"):
    store.from_library(library, A, MODEL)(None, (6, 64), table)
  with pytest.raises(ValueError, match="Did you mean"):
    store.from_library(library, "taskless_demo_has_ct")
  # the continual path refuses a library of another frozen model before training
  with pytest.raises(ValueError, match="another frozen model"):
    continual.tune_into_library(library, **_train_kwargs(
        tmp_path / "c", "taskless_demo_first", ["red"],
        initial_checkpoint_path=str(tmp_path)))
  assert not os.path.exists(tmp_path / "c")


def test_similarity_ranks_the_target_s_own_prompt_first(grown):
  target = np.load(grown["run_b"].prompt_path)
  rows = ranking.by_similarity(grown["library"], target, MODEL)
  assert [r["name"] for r in rows] == [B, A]
  assert rows[0]["average"] == pytest.approx(1.0) and rows[0]["per_token"] < 1.0
  with pytest.raises(ValueError, match="d_model: expected 32"):
    ranking.by_similarity(grown["library"], np.ones((4, 32)))


def test_zero_shot_evaluates_the_library_in_one_bank_pass(grown):
  rows = ranking.by_zero_shot(grown["library"], initial_checkpoint_path=MODEL,
                              mixture_or_task_name=B, task_feature_lengths=LENGTHS,
                              batch_size=8, num_examples=12, register_tasks=_register,
                              output_dir=str(grown["root"] / "zs"))
  assert {r["name"] for r in rows} == {A, B}
  assert all(r["metric"] == f"{B}/accuracy" for r in rows)
  # the scores are the per-prompt evaluations' (B's own prompt answers yes/no)
  assert rows[0]["name"] == B and rows[0]["score"] > rows[1]["score"]
  written = os.listdir(grown["root"] / "zs")
  assert "eval_validation_ensemble_of_2.json" in written


def test_cli_list_add_similarity_and_one_line_errors(grown, tmp_path, capsys):
  library = str(tmp_path / "lib")
  assert cli.main(["library", "add", f"--library={library}",
                   f"--model_dir={grown['run_a'].model_dir}"]) == 0
  assert f"added {A}" in capsys.readouterr().out
  assert cli.main(["library", "list", f"--library={library}", "--json"]) == 0
  assert json.loads(capsys.readouterr().out)[0]["task"] == A
  assert cli.main(["library", "add", f"--library={library}",
                   f"--model_dir={grown['run_a'].model_dir}"]) == 1
  err = capsys.readouterr().err
  assert "exists; expected a new entry name" in err and "Traceback" not in err
  target = os.path.join(grown["entry_b"].directory, export.npy_name(PROMPT_PATH))
  assert cli.main(["similarity", f"--library={grown['library']}", f"--target={target}",
                   f"--output_dir={tmp_path / 'out'}"]) == 0
  out = capsys.readouterr().out
  assert f"| 1 | {B} |" in out
  assert json.load(open(tmp_path / "out" / "similarity.json"))["rows"][0]["name"] == B
  assert cli.main(["similarity", f"--library={grown['library']}",
                   "--gin_file=runs/demo.gin", f"--gin.MIXTURE_OR_TASK_NAME='{B}'",
                   "--gin.EVAL_SPLIT='test'", "--gin.prompt_eval.evaluate_prompt.num_examples=12",
                   f"--output_dir={tmp_path / 'out'}"]) == 0
  assert f"by zero-shot score on {B}" in capsys.readouterr().out
  assert os.path.exists(tmp_path / "out" / "zero_shot.md")
  assert cli.main(["similarity", f"--library={grown['library']}"]) == 1
  assert "expected --target" in capsys.readouterr().err
  # `library tune` checks the entry before it trains: nothing is written
  assert cli.main(["library", "tune", f"--library={grown['library']}",
                   "--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{tmp_path / 'tune'}'",
                   f"--gin.MIXTURE_OR_TASK_NAME='{A}'"]) == 1
  assert "exists; expected a new entry name" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "tune" / "config.gin")
