"""`prompt-tuning nearest`: nearest tokens by cosine and norms, on the demo's frozen model."""
import json

import jax
import numpy as np
import pytest

from prompt_tuning import paths, tree
from prompt_tuning.checkpoints import frozen as frozen_lib
from prompt_tuning.cli import nearest as nearest_cli
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.prompts import export, initializers, interpret
from prompt_tuning.prompts.spec import PROMPT_PATH

MODEL = paths.demo_model_dir()


def test_nearest_tokens_ranks_by_cosine_not_dot_product():
  emb = np.array([[1.0, 0.0], [10.0, 10.0], [0.0, 1.0]])
  ids, sims = interpret.nearest_tokens(np.array([[1.0, 0.1]]), emb, k=3)
  assert ids[0].tolist() == [0, 1, 2]  # a dot product would rank row 1 first
  np.testing.assert_allclose(sims[0, 0], 1.0 / np.sqrt(1.01), rtol=1e-6)


def test_nearest_tokens_rejects_mismatched_dims():
  with pytest.raises(ValueError, match="same D"):
    interpret.nearest_tokens(np.zeros((2, 3)), np.zeros((5, 4)))
  with pytest.raises(ValueError, match="k=9; expected 1..5"):
    interpret.nearest_tokens(np.zeros((2, 4)), np.zeros((5, 4)), k=9)


def test_norms_are_the_rows_l2_norms_against_the_tables_percentiles():
  table = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
  prompt = 5 * table[:3]
  report = interpret.interpret(prompt, table, k=2)
  np.testing.assert_allclose([r["norm"] for r in report["positions"]],
                             np.linalg.norm(prompt, axis=1), rtol=1e-6)
  assert report["embedding_norms"]["p50"] == pytest.approx(
      np.percentile(np.linalg.norm(table, axis=1), 50), rel=1e-6)
  assert [r["nearest"][0]["id"] for r in report["positions"]] == [0, 1, 2]  # scale-free


def test_a_class_label_prompt_lists_its_labels_first(tmp_path, capsys):
  vocab = demo_tasks.demo_vocabulary()
  _, frozen = frozen_lib.load_frozen(MODEL)
  table = frozen_lib.embedding_table(frozen)
  labels = ["animal", "color"]
  prompt = initializers.class_labels(labels, vocab, fill=initializers.sampled_vocab(100))(
      jax.random.PRNGKey(0), (5, table.shape[1]), table)
  export.write_npy_dir(str(tmp_path / "prompt"), tree.unflatten({PROMPT_PATH: prompt}))
  out_json, out_png = tmp_path / "n.json", tmp_path / "n.png"
  assert nearest_cli.main(["--prompt_file", str(tmp_path / "prompt"), "--initial_checkpoint_path",
                           MODEL, "-k", "3", "--json", str(out_json), "--png",
                           str(out_png)]) == 0
  (report,) = json.load(open(out_json))
  for position, label in enumerate(labels):
    first = report["positions"][position]["nearest"][0]
    assert (first["token"], first["id"]) == (label, vocab.encode(label)[0])
    assert first["cosine"] == pytest.approx(1.0, abs=1e-5)
  # Sampled-vocab positions are rows of the table too: their nearest token is themselves.
  assert all(r["nearest"][0]["cosine"] == pytest.approx(1.0, abs=1e-5)
             for r in report["positions"][2:])
  text = capsys.readouterr().out
  assert "'animal' [91] (1.00)" in text and "embedding norms median" in text
  with open(out_png, "rb") as f:
    assert f.read(4) == b"\x89PNG"


def test_bad_input_names_what_is_needed(tmp_path):
  np.save(tmp_path / "p.npy", np.ones((3, 8), np.float32))
  with pytest.raises(ValueError, match="--initial_checkpoint_path is required"):
    nearest_cli.nearest(prompt_file=str(tmp_path / "p.npy"))
  with pytest.raises(ValueError, match=r"has shape \(3, 8\); expected width d_model=64"):
    nearest_cli.nearest(prompt_file=str(tmp_path / "p.npy"), initial_checkpoint_path=MODEL)
  with pytest.raises(ValueError, match="no such file or directory"):
    nearest_cli.nearest(prompt_file=str(tmp_path / "missing.npy"),
                        initial_checkpoint_path=MODEL)
