"""`prompt-tuning infer`: outputs equal the library calls; mixed-task lines equal per-task runs.

The demo's frozen model with prompts an earlier run saved (tests/fixtures/legacy_run:
after 2 and 4 steps, encoder and decoder prompts) and one drawn at random, so the
prompts answer differently.
"""
import json
import os

import numpy as np
import pytest

from prompt_tuning import cli, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.infer import predictor, records
from prompt_tuning.models import Transformer
from prompt_tuning.prompts import export

import model_fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "prompt_tuning", "assets", "demo_t5")
RUN = os.path.join(ROOT, "tests", "fixtures", "legacy_run")
LENGTHS = {"inputs": 16, "targets": 8}
TEXTS = ["lion bear horse black yellow", "red white blue cat", "dog dog cat", "cow red",
         "blue green lion bird", "fish"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  """{name: prompt source}: step 2, step 4, and a random prompt (both stacks)."""
  root = tmp_path_factory.mktemp("prompts")
  out = {"two": os.path.join(RUN, "numpy_checkpoints", "checkpoint_2"),
         "four": os.path.join(RUN, "numpy_checkpoints", "checkpoint_4")}
  random = {k: np.random.default_rng(3).uniform(-0.5, 0.5, np.shape(v)).astype(np.float32)
            for k, v in run_dir.read_trainable(RUN, 2)[0].items()}
  out["random"] = export.write_npy_dir(str(root / "random"), tree.unflatten(random))
  return out


def _write(path, lines):
  with open(path, "w") as f:
    for line in lines:
      f.write(json.dumps(line) + "\n")
  return str(path)


def _read(path):
  return [json.loads(line) for line in open(path)]


def _run(tmp_path, prompts, lines, **kwargs):
  out = str(tmp_path / f"out_{len(os.listdir(tmp_path))}.jsonl")
  predictor.infer(initial_checkpoint_path=MODEL, prompts=prompts, output_file=out,
                  task_feature_lengths=LENGTHS, input_file=_write(
                      tmp_path / f"in_{len(os.listdir(tmp_path))}.jsonl", lines),
                  batch_size=4, progress=False, **kwargs)
  return _read(out)


def _library(source):
  """(model, params, tokens [6, 16]) for one prompt source, without the infer code."""
  vocab = demo_tasks.demo_vocabulary()
  config, frozen = frozen_lib.load_frozen(MODEL, dropout_rate=0.0)
  flat, _ = run_dir.read_prompt_source(source)
  specs = export.prompt_specs(flat)
  model = Transformer(config, encoder_prompt=specs.get("encoder"),
                      decoder_prompt=specs.get("decoder"))
  params = frozen_lib.with_prompts(frozen, flat)
  tokens = np.zeros((len(TEXTS), 16), np.int32)
  for i, text in enumerate(TEXTS):
    ids = vocab.encode(text)[:15] + [1]
    tokens[i, :len(ids)] = ids
  return model, params, tokens, vocab


def _upto_eos(row):
  row = list(row)
  return row[:row.index(1) + 1] if 1 in row else [t for t in row if t]


def test_greedy_and_scores_equal_the_library_calls(tmp_path, sources):
  got = _run(tmp_path, sources["four"], [{"inputs": t, "targets": "x"} for t in TEXTS])
  model, params, tokens, vocab = _library(sources["four"])
  ids = np.asarray(model_fixtures.greedy(model, params, tokens, 8))
  targets = np.zeros((len(TEXTS), 8), np.int32)
  for i, row in enumerate(ids):
    kept = _upto_eos(row)
    targets[i, :len(kept)] = kept
  scores = np.asarray(model_fixtures.score(model, params, {
      "encoder_input_tokens": tokens, "decoder_target_tokens": targets,
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0)))}))
  assert [g["input"] for g in got] == TEXTS and all(g["target"] == "x" for g in got)
  assert [g["prediction"] for g in got] == [vocab.decode(_upto_eos(r)) for r in ids]
  np.testing.assert_allclose([g["score"] for g in got], scores, atol=1e-5, rtol=0)


def test_beam_and_rank_modes_equal_the_library_calls(tmp_path, sources):
  lines = [{"inputs": t} for t in TEXTS]
  beam = _run(tmp_path, sources["two"], lines,
              decoding_config=predictor.DecodingConfig(mode="beam", num_beams=3, alpha=0.6))
  model, params, tokens, vocab = _library(sources["two"])
  want, _ = model_fixtures.beam(model, params, tokens, 8, 3, 0.6)
  assert [g["prediction"] for g in beam] == [vocab.decode(_upto_eos(r))
                                             for r in np.asarray(want)[:, 0]]
  rank = _run(tmp_path, sources["two"], lines, decoding_config=predictor.DecodingConfig(
      mode="rank", options=("animal", "color", "cat")))
  options = np.zeros((3, 8), np.int32)
  for i, o in enumerate(("animal", "color", "cat")):
    ids = vocab.encode(o) + [1]
    options[i, :len(ids)] = ids
  best, scores = model_fixtures.rank_classify(model, params, tokens, options)
  for g, b, s in zip(rank, np.asarray(best), np.asarray(scores)):
    assert g["prediction"] == ("animal", "color", "cat")[b]
    np.testing.assert_allclose(list(g["options"].values()), s, atol=1e-5, rtol=0)
    assert g["score"] == pytest.approx(float(s[b]), abs=1e-5)


def test_a_task_split_is_read_with_its_targets(tmp_path, sources):
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())
  out = str(tmp_path / "task.jsonl")
  predictor.infer(initial_checkpoint_path=MODEL, prompts=sources["four"], output_file=out,
                  task_feature_lengths=LENGTHS, mixture_or_task_name="taskless_demo_majority",
                  split="validation", num_examples=6, batch_size=4, progress=False)
  got = _read(out)
  want = list(records.read_task("taskless_demo_majority", "validation", LENGTHS, 6))
  assert [g["input"] for g in got] == [r.input for r in want]
  assert [g["target"] for g in got] == [r.target for r in want]
  assert all(g["prediction"] in ("animal", "color") for g in got)


def test_mixed_task_lines_equal_the_per_prompt_runs_line_by_line(tmp_path, sources):
  names = ["two", "four", "random"]
  lines = [{"inputs": t, "prompt": names[i % 3]} for i, t in enumerate(TEXTS * 2)]
  mixed = _run(tmp_path, [f"{n}={sources[n]}" for n in names], lines)
  assert [g["prompt"] for g in mixed] == [line["prompt"] for line in lines]
  for name in names:
    own = [line for line in lines if line["prompt"] == name]
    alone = _run(tmp_path, sources[name], [{"inputs": line["inputs"]} for line in own])
    got = [g for g in mixed if g["prompt"] == name]
    assert [g["prediction"] for g in got] == [a["prediction"] for a in alone]
    np.testing.assert_allclose([g["score"] for g in got], [a["score"] for a in alone],
                               atol=1e-5, rtol=0)
  by_prompt = {n: [g["prediction"] for g in mixed if g["prompt"] == n] for n in names}
  assert len({tuple(v) for v in by_prompt.values()}) > 1  # the prompts answer differently


def test_an_ensemble_runs_every_input_through_every_prompt_and_votes(tmp_path, sources):
  members = [f"{n}={sources[n]}" for n in ("two", "four", "random")]
  got = _run(tmp_path, members, [{"inputs": t} for t in TEXTS], ensemble=True)
  alone = {n: _run(tmp_path, sources[n], [{"inputs": t} for t in TEXTS])
           for n in ("two", "four", "random")}
  for i, g in enumerate(got):
    assert g["members"] == [alone[n][i]["prediction"] for n in ("two", "four", "random")]
    counts = {m: g["members"].count(m) for m in g["members"]}
    assert g["prediction"] == next(m for m in g["members"] if counts[m] == max(counts.values()))
  rank = _run(tmp_path, members, [{"inputs": t} for t in TEXTS], ensemble=True,
              decoding_config=predictor.DecodingConfig(mode="rank", options=("animal", "color")))
  alone_rank = {n: _run(tmp_path, sources[n], [{"inputs": t} for t in TEXTS],
                        decoding_config=predictor.DecodingConfig(
                            mode="rank", options=("animal", "color")))
                for n in ("two", "four", "random")}
  for i, g in enumerate(rank):  # the mean of the members' log-likelihoods
    for option in ("animal", "color"):
      want = np.mean([alone_rank[n][i]["options"][option] for n in alone_rank])
      assert g["options"][option] == pytest.approx(want, abs=1e-5)


def test_each_line_is_postprocessed_with_its_own_tasks_label_words(tmp_path, sources):
  lines = [{"inputs": t, "task": "taskless_super_glue_rte_v102"} for t in TEXTS[:2]]
  got = _run(tmp_path, [f"taskless_super_glue_rte_v102={sources['four']}",
                        f"other={sources['two']}"], lines,
             decoding_config=predictor.DecodingConfig(mode="rank"))
  for g in got:  # rank mode took the task's label words; the label is the class id
    assert set(g["options"]) == {"entailment", "not_entailment"}
    assert g["label"] == ["entailment", "not_entailment"].index(g["prediction"])


def test_bad_input_is_refused_naming_the_line(tmp_path, sources):
  empty = tmp_path / "empty.jsonl"
  empty.write_text("\n")
  with pytest.raises(ValueError, match="holds no inputs"):
    predictor.infer(initial_checkpoint_path=MODEL, prompts=sources["two"],
                    output_file=str(tmp_path / "o.jsonl"), task_feature_lengths=LENGTHS,
                    input_file=str(empty), progress=False)
  bank = [f"two={sources['two']}", f"four={sources['four']}"]
  with pytest.raises(ValueError, match=r"in_\d+.jsonl:2: no prompt named 'cb' in the bank"):
    _run(tmp_path, bank, [{"inputs": "a", "prompt": "two"}, {"inputs": "b", "prompt": "cb"}])
  with pytest.raises(ValueError, match=r":1: the bank holds 2 prompts \['two', 'four'\]; "
                                       r"expected the line to name its \"prompt\""):
    _run(tmp_path, bank, [{"inputs": "a"}])
  with pytest.raises(ValueError, match=r":1: no input text; expected one of the keys"):
    _run(tmp_path, sources["two"], [{"question": "a"}])
  np.save(tmp_path / "narrow.npy", np.zeros((4, 8), np.float32))
  with pytest.raises(ValueError, match=r"narrow.npy.*expected width d_model=64"):
    _run(tmp_path, str(tmp_path / "narrow.npy"), [{"inputs": "a"}])
  np.save(tmp_path / "long.npy", np.zeros((7, 64), np.float32))
  np.save(tmp_path / "short.npy", np.zeros((4, 64), np.float32))
  with pytest.raises(ValueError, match="prompts of different shapes cannot share a bank"):
    _run(tmp_path, [str(tmp_path / "long.npy"), str(tmp_path / "short.npy")],
         [{"inputs": "a"}], ensemble=True)
  with pytest.raises(ValueError, match=r"rank mode needs options"):
    _run(tmp_path, sources["two"], [{"inputs": "a"}],
         decoding_config=predictor.DecodingConfig(mode="rank"))
  with pytest.raises(ValueError, match="DecodingConfig.mode='top'"):
    predictor.DecodingConfig(mode="top")


def test_the_infer_command_with_gin_files_and_batch_size(tmp_path, sources, capsys):
  inputs = _write(tmp_path / "cli_in.jsonl", [{"inputs": t} for t in TEXTS])
  out = tmp_path / "cli_out.jsonl"
  code = cli.main(["infer", "--gin_file=runs/prompt_infer.gin",
                   "--gin_file=decoding/beam_search.gin", "--gin.MODEL_CONFIG=None",
                   "--gin.VOCABULARY=None", f"--gin.INITIAL_CHECKPOINT_PATH='{MODEL}'",
                   f"--gin.PROMPTS='{sources['two']}'", f"--gin.INFER_INPUT_FILE='{inputs}'",
                   f"--gin.INFER_OUTPUT_FILE='{out}'", "--gin.NUM_BEAMS=3",
                   "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 8}",
                   "--batch_size=4"])
  assert code == 0, capsys.readouterr().err
  assert "6 predictions (1 prompt) written to" in capsys.readouterr().out
  want = _run(tmp_path, sources["two"], [{"inputs": t} for t in TEXTS],
              decoding_config=predictor.DecodingConfig(mode="beam", num_beams=3))
  assert [g["prediction"] for g in _read(out)] == [w["prediction"] for w in want]
