"""What every benchmark ends with: its result as JSON, on the last line and in --json_out."""
import argparse
import json
import os
from typing import Any, Callable, Optional


def write_result(result: Any, json_out: Optional[str]) -> None:
  """Writes `result` to `json_out` (indented; skipped when None) and prints it as one line."""
  if json_out:
    with open(json_out, "w") as fh:
      json.dump(result, fh, indent=1)
  print(json.dumps(result))


def run_and_report(args: Any, run: Callable[[Any], Any], render: Callable[[Any], str]) -> int:
  """`run(args)`, its table printed, then `write_result` (json_out's directory created)."""
  result = run(args)
  print(render(result))
  if args.json_out:
    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
  write_result(result, args.json_out)
  return 0


def parse_demo_flags(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
  """Adds the flags of the benchmarks that tune prompts on the demo model, then parses."""
  parser.add_argument("--eval_examples", type=int, default=200)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--prompt_length", type=int, default=8)
  parser.add_argument("--work_dir", default=None, help="runs and library (default: temp dir)")
  parser.add_argument("--json_out", default=None)
  return parser.parse_args(argv)
