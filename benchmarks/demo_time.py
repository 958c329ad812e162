"""`prompt-tuning demo` as a user runs it: wall clock, accuracies, files.

    python benchmarks/demo_time.py            # one run in a fresh temp dir
    python benchmarks/demo_time.py --check    # exit 1 unless the demo meets its targets

Runs the installed `prompt-tuning demo` console script (the README's first command)
in a fresh process and output directory, times the whole command (interpreter and
JAX start-up, compilation, training, evaluation, plot), and reads the accuracies it
prints. Targets (issue: the embedded default): held-out test accuracy >= 90% after
tuning, validation accuracy before tuning at most 60% (chance is 50%), under 300 s
on 2 CPU cores, curves.png written. tests/test_demo.py runs the same command in CI and
checks these targets.

Prints a table and, last, one JSON line (also written to --json_out if given).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from output import write_result

TARGETS = {"accuracy_test_min": 90.0, "accuracy_before_max": 60.0, "seconds_max": 300.0}
_LINES = {
    "accuracy_before": r"accuracy before tuning \(untrained prompt, validation\):\s+([\d.]+)%",
    "accuracy_validation": r"accuracy after tuning \(best prompt, validation\):\s+([\d.]+)%",
    "accuracy_test": r"accuracy after tuning \(best prompt, held-out test\):\s+([\d.]+)%",
}


def command() -> list:
  """The `prompt-tuning` script next to this interpreter, else the one on PATH."""
  script = os.path.join(os.path.dirname(sys.executable), "prompt-tuning")
  script = script if os.path.isfile(script) else shutil.which("prompt-tuning")
  if not script:
    raise FileNotFoundError("no `prompt-tuning` console script next to "
                            f"{sys.executable} or on PATH; run `pip install -e .` first.")
  return [script]


def parse_output(text: str) -> dict:
  """The accuracies `prompt-tuning demo` prints -> {name: percent}."""
  found = {}
  for name, pattern in _LINES.items():
    match = re.search(pattern, text)
    if not match:
      raise ValueError(f"the demo's output has no line matching {pattern!r}; got:\n{text}")
    found[name] = float(match.group(1))
  return found


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
  p.add_argument("--json_out", default=None)
  args = p.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    out_dir = os.path.join(tmp, "demo")
    cmd = command() + ["demo", "--output_dir", out_dir, "--no_progress"]
    tick = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - tick
    if proc.returncode:
      print(proc.stdout + proc.stderr, file=sys.stderr)
      raise SystemExit(f"`{' '.join(cmd)}` exited with {proc.returncode}")
    result = parse_output(proc.stdout)
    result.update(seconds=seconds, cpu_count=os.cpu_count(),
                  png_written=os.path.isfile(os.path.join(out_dir, "curves.png")))
  misses = [name for name, bad in (
      ("accuracy_test", result["accuracy_test"] < TARGETS["accuracy_test_min"]),
      ("accuracy_before", result["accuracy_before"] > TARGETS["accuracy_before_max"]),
      ("seconds", seconds > TARGETS["seconds_max"]),
      ("png_written", not result["png_written"])) if bad]
  print(f"`prompt-tuning demo`, fresh process and output dir, {os.cpu_count()} CPU cores")
  print("| | measured | target |\n|---|---|---|")
  print(f"| accuracy before tuning (validation) | {result['accuracy_before']:.1f}% "
        f"| <= {TARGETS['accuracy_before_max']:.0f}% |")
  print(f"| accuracy after tuning (validation) | {result['accuracy_validation']:.1f}% | |")
  print(f"| accuracy after tuning (held-out test) | {result['accuracy_test']:.1f}% "
        f"| >= {TARGETS['accuracy_test_min']:.0f}% |")
  print(f"| wall clock, whole command | {seconds:.0f} s | < {TARGETS['seconds_max']:.0f} s |")
  print(f"| curves.png written | {result['png_written']} | True |")
  record = {"result": result, "targets": TARGETS, "missed": misses}
  write_result(record, args.json_out)
  return 1 if args.check and misses else 0


if __name__ == "__main__":
  sys.exit(main())
