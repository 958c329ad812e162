"""The notebooks run end to end (at a small setting), so they cannot rot."""
import os

import nbformat
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


@pytest.mark.slow
def test_superglue_reproduction_runs_in_smoke_mode(tmp_path):
  out = tmp_path / "run"
  nb = _run("superglue_reproduction.ipynb", {"SMOKE": True, "TRAIN_STEPS": 4, "EVAL_PERIOD": 2,
                                              "BATCH_SIZE": 4, "PROMPT_LENGTH": 4,
                                              "OUTPUT_DIR": str(out)}, tmp_path)
  outputs = [o for c in nb.cells for o in c.get("outputs", [])]
  text = "\n".join(o.get("text", "") for o in outputs)
  tables = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
  assert "prompt-tuning train --gin_file=models/t5_1_1_tiny_prompt.gin" in text
  for task in ("boolq", "cb", "rte"):
    assert f"| {task} | tiny (smoke) |" in tables
    assert os.path.isfile(out / task / "best" / "encoder.prompt.prompt.npy")
    assert os.path.isfile(out / task / "eval" / "eval_validation_best.json")
  assert os.path.isfile(out / "superglue.png")
