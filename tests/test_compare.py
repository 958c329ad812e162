"""`prompt-tuning compare` (prompt_tuning.compare, cli/compare.py).

The end-to-end test runs real methods on the demo model for a few steps and
checks each row against the files its run wrote (the arrays in best/, the
metrics log), and the parameter counts against their formulas.
"""
import json
import os

import numpy as np
import pytest

from prompt_tuning.checkpoints import run_dir
from prompt_tuning.cli import compare as compare_cli
from prompt_tuning.compare import methods, report

TASK = "taskless_demo_majority"
METRIC = f"{TASK}/accuracy"


def test_methods_parse_with_labels_in_order():
  entries = methods.parse_methods("word=prompt_design, prompt_design,prompt_tuning")
  assert [(e.label, e.method.name) for e in entries] == [
      ("word", "prompt_design"), ("prompt_design", "prompt_design"),
      ("prompt_tuning", "prompt_tuning")]
  assert entries[0].method.command == methods.DESIGN
  assert methods.parse_method_bindings(["word:DESIGN_TEMPLATE='a: {inputs}'"], entries) == {
      "word": ["DESIGN_TEMPLATE = 'a: {inputs}'"], "prompt_design": [], "prompt_tuning": []}


@pytest.mark.parametrize("text, match", [
    ("", "names no method"),
    ("lora,prompt_tunning", r"unknown method 'prompt_tunning'.*did you mean prompt_tuning"),
    ("lora,lora", r"runs \['lora'\] more than once"),
    ("a/b=lora", "label 'a/b'"),
])
def test_bad_method_lists_are_refused(text, match):
  with pytest.raises(ValueError, match=match):
    methods.parse_methods(text)


def test_bad_method_bindings_are_refused():
  entries = methods.parse_methods("lora")
  with pytest.raises(ValueError, match="expected label:NAME=VALUE"):
    methods.parse_method_bindings(["LORA_RANK=4"], entries)
  with pytest.raises(ValueError, match="'ia3' is not one of --methods"):
    methods.parse_method_bindings(["ia3:IA3_X=1"], entries)


def test_every_method_names_a_gin_file_that_exists():
  from prompt_tuning import paths
  missing = [m.gin_file for m in methods.METHODS.values()
             if not os.path.isfile(os.path.join(paths.config_dir(), m.gin_file))]
  assert missing == []


def test_the_table_formats_what_the_rows_hold():
  rows = [report.with_percent(r) for r in (
      {"label": "a", "method": "prefix", "score": 91.25, "trainable_params": 1024,
       "inference_params": 640,
       "model_params": 102400, "bytes_per_task": 4352, "step_time_s": 0.0123,
       "peak_memory_gib": 1.5, "steps_to_best": 20, "wall_s_to_best": 12.4},
      {"label": "prompt_design", "method": "prompt_design", "score": 20.0,
       "trainable_params": 0, "model_params": 102400, "bytes_per_task": 90,
       "step_time_s": None, "peak_memory_gib": 1.0, "steps_to_best": 0,
       "wall_s_to_best": 0.0},
      {"label": "x", "method": "ia3", "error": "boom"})]
  assert rows[0]["trainable_pct"] == 1.0
  lines = report.markdown(rows, METRIC).splitlines()
  assert lines[0].startswith(f"| method | {METRIC} (best checkpoint) |")
  assert lines[2] == ("| a (prefix) | 91.25 | 1,024 (640 served) | 1% | 4.4 KB | 12 ms | "
                      "1.50 GiB | 20 | 12 s |")
  assert lines[3] == "| prompt_design | 20.00 | 0 | 0% | 90 B | - | 1.00 GiB | 0 | 0 s |"
  assert lines[4].startswith("| x | failed: boom")


@pytest.mark.slow
def test_compare_on_the_demo_model_writes_one_row_per_method_from_the_runs(tmp_path):
  out = tmp_path / "cmp"
  argv = ["--gin_file=runs/demo.gin", f"--output_dir={out}", "--gin.TRAIN_STEPS=10",
          "--gin.EVAL_PERIOD=10", "--gin.EVAL_NUM_EXAMPLES=32"]
  methods_flag = "--methods=prompt_design,prompt_tuning"
  # A failing method is named, and the others still run.
  with pytest.raises(RuntimeError, match=r"methods \['bad'\] failed"):
    compare_cli.main([*argv, f"{methods_flag},bad=prompt_design",
                      "--method_gin=bad:DESIGN_TEMPLATE=''"])
  rows = {r["label"]: r for r in json.loads((out / "compare.json").read_text())["rows"]}
  assert "template='' is empty" in rows["bad"]["error"]
  assert not any(rows[m].get("error") for m in ("prompt_design", "prompt_tuning"))
  # A second command reuses the finished rows; nothing runs again.
  before = os.path.getmtime(out / "prompt_tuning" / "metrics.jsonl")
  assert compare_cli.main([*argv, methods_flag]) == 0
  assert os.path.getmtime(out / "prompt_tuning" / "metrics.jsonl") == before
  table = (out / "compare.md").read_text().splitlines()
  result = json.loads((out / "compare.json").read_text())
  assert (out / "compare.png").stat().st_size > 1000
  assert result["metric"] == METRIC and len(table) == 2 + 2
  rows = {r["label"]: r for r in result["rows"]}
  assert list(rows) == ["prompt_design", "prompt_tuning"]
  for r in rows.values():
    assert set(report.COLUMNS) <= set(r) and r["peak_memory_gib"] > 0.1
    assert r["model_params"] == rows["prompt_tuning"]["model_params"]
  # Prompt design (its bounds: tests/test_prompt_design.py) trains nothing.
  assert rows["prompt_design"]["trainable_params"] == 0
  # Prompt tuning: the row is its run's files. P x D scalars in best/, the score
  # logged at the best step, the step time from the logged rate.
  pt = rows["prompt_tuning"]
  best = run_dir.load_best(str(out / "prompt_tuning"))
  prompt = np.load(out / "prompt_tuning" / "best" / "encoder.prompt.prompt.npy")
  assert prompt.shape == (8, 64) and pt["trainable_params"] == prompt.size == 8 * 64
  assert pt["bytes_per_task"] == os.path.getsize(
      out / "prompt_tuning" / "best" / "encoder.prompt.prompt.npy")
  assert pt["score"] == best["value"] and pt["steps_to_best"] == best["step"]
  assert abs(pt["trainable_pct"] - 100 * 512 / pt["model_params"]) < 1e-9
  assert 0 < pt["step_time_s"] < 5 and pt["wall_s_to_best"] > 0
