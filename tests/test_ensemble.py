"""Prompt ensembles (paper section 6): one batched pass through a bank, checked against
separate evaluations, identical members and a majority vote counted by hand."""
import json
import os

import numpy as np
import pytest

from prompt_tuning import tree
from prompt_tuning.checkpoints import bank as bank_lib, run_dir
from prompt_tuning.cli import eval as eval_cli
from prompt_tuning.eval import ensemble, prompt_eval
from prompt_tuning.eval.evaluator import Evaluator
from prompt_tuning.models import Transformer
from prompt_tuning.prompts import export, spec as spec_lib
from prompt_tuning.prompts.spec import PROMPT_PATH
from prompt_tuning.testing import tiny

LENGTHS = {"inputs": 8, "targets": 2}


def test_majority_vote_by_hand():
  eos = 1
  decoded = np.array([
      [[5, eos], [6, eos], [5, eos]],   # 5 twice, 6 once -> 5
      [[7, eos], [8, eos], [8, eos]],   # 8 twice -> 8
      [[2, eos], [3, eos], [4, eos]],   # all differ -> the first member's
      [[9, 0], [9, eos], [9, 0]],       # "9" twice (no EOS) beats "9 EOS" once
  ])
  np.testing.assert_array_equal(ensemble.majority_vote(decoded),
                                [[5, eos], [8, eos], [2, eos], [9, 0]])
  np.testing.assert_array_equal(ensemble.mean_score([[1.0, 2.0, 6.0]]), [3.0])
  summary = ensemble.summarize([{"a": 1.0, "b": 5.0}, {"a": 3.0}])
  assert summary == {"mean": {"a": 2.0}, "std": {"a": pytest.approx(np.sqrt(2.0))}}
  with pytest.raises(ValueError, match=r"expected \[B, K, T\]"):
    ensemble.majority_vote(np.zeros((2, 3)))


@pytest.fixture(scope="module")
def setup():
  name = tiny.register_tiny_task("tiny_majority_scored_v1", {"train": 8, "validation": 13},
                                 with_score_metric=True)
  params = tiny._tiny_params(0)  # pylint: disable=protected-access
  rng = np.random.default_rng(0)
  prompts = [rng.uniform(-1, 1, (2, 16)).astype(np.float32) for _ in range(3)]
  return name, params, prompts


def _single(name, params, prompt):
  model = Transformer(tiny.tiny_config(), encoder_prompt=spec_lib.encoder_prompt(2))
  evaluator = Evaluator(model, name, LENGTHS, 5)
  return evaluator.evaluate({"encoder": {"prompt": {"prompt": prompt}}}, params, step=0)


def _ensemble(name, params, prompts):
  model = Transformer(tiny.tiny_config(),
                      encoder_prompt=spec_lib.encoder_prompt(2, len(prompts)))
  evaluator = Evaluator(model, name, LENGTHS, 5)  # 13 examples: the last batch is padded
  trainable = {"encoder": {"prompt": {"prompt": np.stack(prompts)}}}
  return evaluator, trainable, evaluator.evaluate_ensemble(trainable, params, step=0)


def test_a_batched_ensemble_equals_separate_evaluations(setup):
  name, params, prompts = setup
  _, _, got = _ensemble(name, params, prompts)
  separate = [_single(name, params, p) for p in prompts]
  assert len(got["members"]) == 3
  for member, want in zip(got["members"], separate):
    assert member.keys() == want.keys()
    for key in want:
      assert member[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
  key = f"{name}/accuracy"
  values = [s[key] for s in separate]
  assert got["mean"][key] == pytest.approx(np.mean(values))
  assert got["std"][key] == pytest.approx(np.std(values, ddof=1))
  # Score metrics: the ensemble's per-example score is the members' mean.
  for stat in ("first_target_score", "last_target_score", "mean_target_score"):
    assert got["ensemble"][f"{name}/{stat}"] == pytest.approx(
        np.mean([s[f"{name}/{stat}"] for s in separate]), rel=1e-5)
  assert f"{name}/loss_per_token" not in got["ensemble"]  # no teacher forcing for a vote


def test_an_ensemble_of_identical_prompts_is_the_single_prompt(setup):
  name, params, prompts = setup
  _, _, got = _ensemble(name, params, [prompts[0]] * 3)
  want = _single(name, params, prompts[0])
  for key in got["ensemble"]:
    assert got["ensemble"][key] == pytest.approx(want[key], rel=1e-5), key
  for key in want:
    assert got["mean"][key] == pytest.approx(want[key], rel=1e-5)
    assert got["std"][key] == pytest.approx(0.0, abs=1e-5)


def test_the_ensembles_accuracy_is_the_majority_vote_of_the_members(tmp_path, monkeypatch):
  # Members that disagree: an old run's prompts after 2 and 4 steps, and the paper's random
  # init, on the demo's frozen model (encoder and decoder prompts, so both banks).
  from prompt_tuning.demo import tasks as demo_tasks  # pylint: disable=import-outside-toplevel
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  monkeypatch.chdir(root)
  run = os.path.join("tests", "fixtures", "legacy_run")
  random = {k: np.random.default_rng(1).uniform(-0.5, 0.5, np.shape(v)).astype(np.float32)
            for k, v in run_dir.read_trainable(run, 2)[0].items()}
  export.write_npy_dir(str(tmp_path / "random"), tree.unflatten(random))
  sources = [os.path.join(run, "numpy_checkpoints", f"checkpoint_{s}") for s in (2, 4)]
  results = prompt_eval.evaluate_prompt(
      mixture_or_task_name="taskless_demo_majority",
      task_feature_lengths={"inputs": 16, "targets": 8},
      initial_checkpoint_path="prompt_tuning/assets/demo_t5", num_examples=24, batch_size=8,
      prompt_files=sources + [str(tmp_path / "random")], output_dir=str(tmp_path / "eval"),
      register_tasks=lambda: demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary()))
  rows = [json.loads(line) for line in
          open(tmp_path / "eval" / "eval_validation_ensemble_of_3_predictions.jsonl")]
  assert len(rows) == 24
  for row in rows:  # the voted answer, recounted from the members' answers
    counts = {m: row["members"].count(m) for m in row["members"]}
    top = max(counts.values())
    assert row["prediction"] == next(m for m in row["members"] if counts[m] == top)
    assert np.isfinite(row["score"]) and row["score"] <= 0
  accuracy = 100.0 * np.mean([r["prediction"] == r["target"] for r in rows])
  assert results["ensemble"]["taskless_demo_majority/accuracy"] == pytest.approx(accuracy)
  assert sum(len(set(r["members"])) > 1 for r in rows) >= 3  # the members do disagree
  member_accuracy = [m["taskless_demo_majority/accuracy"] for m in results["members"]]
  assert len(set(member_accuracy)) > 1, member_accuracy


def test_eval_takes_a_list_of_prompts_as_an_ensemble_and_writes_predictions(tmp_path, setup):
  name, _, prompts = setup
  ckpt = tiny.write_tiny_checkpoint(str(tmp_path / "t5"))
  sources = []
  for i, prompt in enumerate(prompts):
    sources.append(export.write_npy_dir(str(tmp_path / f"p{i}"),
                                        tree.unflatten({PROMPT_PATH: prompt})))
  results = prompt_eval.evaluate_prompt(
      mixture_or_task_name=name, task_feature_lengths=LENGTHS, initial_checkpoint_path=ckpt,
      prompt_files=sources, batch_size=5, output_dir=str(tmp_path / "eval"))
  assert results["names"] == ["p0", "p1", "p2"]
  with open(tmp_path / "eval" / "eval_validation_ensemble_of_3.json") as f:
    saved = json.load(f)
  assert saved["ensemble"] == pytest.approx(results["ensemble"])
  lines = open(tmp_path / "eval" / "eval_validation_ensemble_of_3_predictions.jsonl").readlines()
  assert len(lines) == 13 and set(json.loads(lines[0])) >= {"input", "target", "prediction",
                                                           "score", "members"}
  table = eval_cli.format_results(results)
  assert table.splitlines()[0] == "metric | p0 | p1 | p2 | mean ± std | ensemble"
  # A single prompt's eval writes its predictions too.
  single = prompt_eval.evaluate_prompt(
      mixture_or_task_name=name, task_feature_lengths=LENGTHS, initial_checkpoint_path=ckpt,
      prompt_file=sources[0], batch_size=5, output_dir=str(tmp_path / "eval1"))
  rows = [json.loads(line) for line in
          open(tmp_path / "eval1" / "eval_validation_p0_predictions.jsonl")]
  assert 100.0 * np.mean([r["prediction"] == r["target"] for r in rows]) == pytest.approx(
      single[f"{name}/accuracy"])


def test_a_bank_on_disk_from_a_manifest_a_directory_or_a_list(tmp_path):
  a, b = np.ones((3, 16), np.float32), np.zeros((3, 16), np.float32)
  np.save(tmp_path / "rte.npy", a)
  export.write_npy_dir(str(tmp_path / "dir" / "boolq"), tree.unflatten({PROMPT_PATH: b}))
  np.save(tmp_path / "dir" / "rte.npy", a)
  with open(tmp_path / "bank.json", "w") as f:
    json.dump({"rte": "rte.npy", "boolq": "dir/boolq"}, f)
  by_manifest = bank_lib.load_bank(str(tmp_path / "bank.json"))
  assert by_manifest.names == ["rte", "boolq"] and by_manifest.encoder.shape == (2, 3, 16)
  assert by_manifest.index("boolq") == 1
  by_dir = bank_lib.load_bank(str(tmp_path / "dir"))
  assert by_dir.names == ["boolq", "rte"]
  np.testing.assert_array_equal(by_dir.encoder[1], a)
  by_list = bank_lib.load_bank([f"x={tmp_path / 'rte.npy'}", str(tmp_path / "dir" / "boolq")])
  assert by_list.names == ["x", "boolq"]
  with pytest.raises(ValueError, match=r"no prompt named 'cb' in the bank; it holds"):
    by_manifest.index("cb")
  np.save(tmp_path / "long.npy", np.ones((5, 16), np.float32))
  with pytest.raises(ValueError, match="prompts of different shapes cannot share a bank"):
    bank_lib.load_bank([str(tmp_path / "rte.npy"), str(tmp_path / "long.npy")])
  with pytest.raises(ValueError, match=r"prompt 'gone': .*no such file"):
    bank_lib.load_bank([f"gone={tmp_path / 'gone.npy'}"])

