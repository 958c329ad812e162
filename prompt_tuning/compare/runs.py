"""One method of a comparison: run it in its own process, then read its row from MODEL_DIR.

Each method runs as `prompt-tuning train` (or `design`) with the user's gin
files, then the method's file, then the user's bindings, then the method's own
(`--method_gin`), in a process of its own: gin state never leaks between
methods and the process's peak resident memory is the method's. Everything in
a row is read from what the run wrote (metrics.jsonl, best/, eval/), nothing is
typed in:

  score            the eval metric at the best checkpoint (best/best.json); prompt
                   design: the same metric of its one evaluation
  trainable_params the scalars in the best checkpoint's arrays (best/*.npy);
                   inference_params what is served (a prefix's MLP folded away)
  model_params     the pretrained model's size (the run's "params" record)
  bytes_per_task   what the task adds on disk: best/'s arrays (prompt design: its text)
  step_time_s      the median train step, from the logged steps/s (compile left out)
  peak_memory_gib  the run's peak resident memory (ru_maxrss; a CPU figure) and, where
                   the device reports one, its peak device memory
  steps_to_best, wall_s_to_best  the best eval's step, and its time since training began
"""
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Optional, Sequence

import numpy as np

from prompt_tuning.checkpoints import run_dir
from prompt_tuning.compare.methods import DESIGN, Entry
from prompt_tuning.eval import prompt_design

ROW_FILE = "compare_row.json"
LOG_FILE = "compare_log.txt"


def command(entry: Entry, model_dir: str, gin_files: Sequence[str], bindings: Sequence[str],
            method_bindings: Sequence[str], extra_flags: Sequence[str] = ()) -> list[str]:
  """The command line that runs `entry` into `model_dir`."""
  return [sys.executable, "-m", "prompt_tuning.cli", entry.method.command,
          *[f"--gin_file={f}" for f in gin_files], f"--gin_file={entry.method.gin_file}",
          f"--gin.MODEL_DIR={model_dir!r}",
          *[f"--gin_bindings={b}" for b in [*bindings, *method_bindings]], *extra_flags]


def run(entry: Entry, model_dir: str, argv: Sequence[str]) -> dict:
  """Runs `argv` (from `command`), its output to MODEL_DIR/compare_log.txt.

  Returns:
    {"returncode", "wall_s", "peak_rss_gib", "log"}.
  """
  os.makedirs(model_dir, exist_ok=True)
  log = os.path.join(model_dir, LOG_FILE)
  start = time.time()
  with open(log, "w") as out:
    out.write(" ".join(argv) + "\n")
    out.flush()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
  return {"returncode": os.waitstatus_to_exitcode(status), "wall_s": time.time() - start,
          "peak_rss_gib": usage.ru_maxrss * 1024 / 2**30, "log": log,
          "label": entry.label}


def last_error(log: str, lines: int = 3) -> str:
  """The last lines of a failed method's log (its one-line error, as the CLI prints it)."""
  with open(log, errors="replace") as f:
    tail = [l.rstrip() for l in f.readlines() if l.strip()][-lines:]
  return " | ".join(tail)


def _checkpoint_arrays(directory: str) -> tuple[int, int]:
  """(scalars, bytes) of the `.npy` arrays in `directory`."""
  scalars = size = 0
  for name in sorted(os.listdir(directory)):
    if name.endswith(".npy"):
      path = os.path.join(directory, name)
      scalars += int(np.prod(np.load(path, mmap_mode="r").shape))
      size += os.path.getsize(path)
  return scalars, size


def _step_time(train: list) -> Optional[float]:
  rates = [r["steps_per_second"] for r in train if r.get("steps_per_second")]
  rates = rates[1:] or rates  # the first window holds the compile
  return 1.0 / statistics.median(rates) if rates else None


def train_row(entry: Entry, model_dir: str, metric: Optional[str]) -> dict:
  """A trained method's row, from its MODEL_DIR.

  Raises:
    ValueError: the run has no best checkpoint or no "params" record (it did
      not finish, or evaluation was off).
  """
  best = run_dir.load_best(model_dir)
  if best is None:
    raise ValueError(f"{model_dir}: no best/ checkpoint; expected a finished run with "
                     "evaluation on (EVAL_PERIOD > 0).")
  records = run_dir.read_metrics(model_dir)
  params = [r for r in records if r["kind"] == "params"]
  if not params:
    raise ValueError(f"{model_dir}/metrics.jsonl has no 'params' record; expected a run "
                     "written by this version's `prompt-tuning train`.")
  evals = {r["step"]: r for r in records if r["kind"] == "eval"}
  metric = metric or best["metric"]
  at_best = evals.get(best["step"], {})
  scalars, size = _checkpoint_arrays(run_dir.best_dir(model_dir))
  start = params[0].get("wall_time")
  return {
      "label": entry.label, "method": entry.method.name, "metric": metric,
      "score": float(at_best.get(metric, best["value"] if metric == best["metric"]
                                 else float("nan"))),
      "trainable_params": scalars, "model_params": int(params[-1]["model_params"]),
      "inference_params": int(params[-1].get("inference_params", scalars)),
      "bytes_per_task": size,
      "step_time_s": _step_time([r for r in records if r["kind"] == "train"]),
      "steps_to_best": int(best["step"]),
      "wall_s_to_best": (at_best["wall_time"] - start
                         if start is not None and "wall_time" in at_best else None),
  }


def design_row(entry: Entry, model_dir: str, metric: Optional[str]) -> dict:
  """Prompt design's row: its one evaluation, nothing trained."""
  path = prompt_design.result_path(model_dir)
  if not os.path.isfile(path):
    raise ValueError(f"{path} not found; expected the prompt design's evaluation.")
  with open(path) as f:
    result = json.load(f)
  metrics = result["metrics"]
  metric = metric or next(k for k in metrics if not k.endswith(("/loss_per_token",
                                                                 "/token_accuracy")))
  return {"label": entry.label, "method": entry.method.name, "metric": metric,
          "score": float(metrics.get(metric, float("nan"))), "trainable_params": 0, "inference_params": 0,
          "model_params": result.get("model_params"),
          "bytes_per_task": len(json.dumps(result["design"]).encode()),
          "step_time_s": None, "steps_to_best": 0, "wall_s_to_best": 0.0,
          "template": result["design"]["template"],
          "num_shots": result["design"]["num_shots"]}


def read_row(entry: Entry, model_dir: str, metric: Optional[str]) -> dict:
  return (design_row if entry.method.command == DESIGN else train_row)(entry, model_dir,
                                                                      metric)
