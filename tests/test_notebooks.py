"""The notebooks run end to end (at a small setting), so they cannot rot."""
import json
import os
import re

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(name, parameters, tmp_path):
  nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
  for cell in nb.cells:
    assert not cell.get("outputs"), f"{name}: outputs are committed; clear them"
  params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
  assert len(params) == 1, f"{name}: expected one cell tagged 'parameters'"
  params[0].source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
  # A kernel can take a while to start while the other xdist worker compiles.
  NotebookClient(nb, timeout=900, startup_timeout=300, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  return nb


@pytest.mark.slow
def test_quickstart_runs(tmp_path):
  nb = _run("quickstart.ipynb", {"TRAIN_STEPS": 60, "OUTPUT_DIR": str(tmp_path / "run")},
            tmp_path)
  text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
  assert "after tuning:" in text and "prompt position 0:" in text
  assert os.path.isfile(tmp_path / "run" / "curves.png")
  # What it printed is what its run did: the accuracies are the run's records, and every
  # prompt position of the saved [P, D] prompt is read back through its nearest tokens.
  records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
  evals = [r for r in records if r["kind"] == "eval"]
  best = json.load(open(tmp_path / "run" / "best" / "best.json"))
  before = float(re.search(r"before tuning: ([\d.]+)%", text).group(1))
  after = float(re.search(r"after tuning:  ([\d.]+)% validation", text).group(1))
  assert before == round(evals[0][best["metric"]], 1) and after == round(best["value"], 1)
  assert after > before
  prompt_length = len(np.load(tmp_path / "run" / "best" / "encoder.prompt.prompt.npy"))
  assert len(re.findall(r"prompt position \d+:", text)) == prompt_length == 8


@pytest.mark.slow
def test_superglue_reproduction_runs_in_smoke_mode(tmp_path):
  out = tmp_path / "run"
  # One of the three tasks, CB, whose score averages two metrics (each task is one more
  # training and evaluation of the same code; the published row is the base model's).
  nb = _run("superglue_reproduction.ipynb", {"SMOKE": True, "TASKS": ["cb"],
                                              "TRAIN_STEPS": 2, "EVAL_PERIOD": 2,
                                              "BATCH_SIZE": 4, "PROMPT_LENGTH": 4,
                                              "OUTPUT_DIR": str(out)}, tmp_path)
  outputs = [o for c in nb.cells for o in c.get("outputs", [])]
  text = "\n".join(o.get("text", "") for o in outputs)
  tables = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
  assert "prompt-tuning train --gin_file=models/t5_1_1_tiny_prompt.gin" in text
  assert "| boolq |" not in tables and "| rte |" not in tables
  assert "| cb | tiny (smoke) |" in tables
  assert os.path.isfile(out / "cb" / "best" / "encoder.prompt.prompt.npy")
  assert os.path.isfile(out / "cb" / "eval" / "eval_validation_best.json")
  # The table's score is the evaluation's: the task's SuperGLUE score (CB: mean of
  # accuracy and macro-F1) from the JSON the eval wrote, and the step is best.json's.
  metrics = json.load(open(out / "cb" / "eval" / "eval_validation_best.json"))["metrics"]
  name = "taskless_super_glue_cb_v102"
  want = (metrics[f"{name}/accuracy"] + metrics[f"{name}/macro_f1"]) / 2
  row = re.search(r"\| cb \| tiny \(smoke\) \| ([\d.]+) \| (\d+) \|", tables)
  assert float(row.group(1)) == round(want, 1), (row.group(0), want)
  assert int(row.group(2)) == json.load(open(out / "cb" / "best" / "best.json"))["step"]
  assert os.path.isfile(out / "superglue.png")
