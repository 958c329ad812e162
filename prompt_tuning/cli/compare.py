"""`prompt-tuning compare`: every method on one frozen model, task and data; one table.

    prompt-tuning compare --gin_file=runs/demo.gin \\
      --methods=prompt_design,prompt_tuning,deep_prompts,prefix,lora,ia3,model_tuning \\
      --output_dir=/tmp/compare

Each method runs in its own process as `prompt-tuning train` (prompt design:
`prompt-tuning design`) with the --gin_file files, then its own
configs/methods/<method>.gin (its standard hyperparameters), then the --gin.
bindings (shared by every method), then its --method_gin bindings; it writes
to OUTPUT_DIR/<label>/. A method name may carry a label to run it twice:
`--methods=with_word=prompt_design,prompt_design --method_gin=with_word:DESIGN_TEMPLATE="'majority: {inputs}'"`.
Written: OUTPUT_DIR/compare.md, compare.json (the rows, from the runs'
files) and compare.png (score against trainable parameters). A method that
finished before (its compare_row.json is there) is not run again; one that
failed is named with the last lines of its log, and the others still run.
"""
import argparse
import json
import os
import sys
from typing import Optional

DEFAULT_OUTPUT_DIR = "/tmp/prompt_tuning_compare"


def _flags(argv):
  from prompt_tuning.cli import flags  # pylint: disable=import-outside-toplevel
  own = argparse.ArgumentParser(add_help=False)
  own.add_argument("--methods", default=None)
  own.add_argument("--method_gin", action="append", default=[])
  own.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR)
  own.add_argument("--metric", default=None,
                   help="the metric compared (default: the runs' EVAL_METRIC / first)")
  known, rest = own.parse_known_args(argv)
  args = flags.parse_flags(rest, "prompt-tuning compare", __doc__)
  if known.methods is None:
    raise ValueError("--methods is required; expected a comma-separated list, e.g. "
                     "--methods=prompt_design,prompt_tuning,lora.")
  return known, args


def main(argv: Optional[list] = None) -> int:
  from prompt_tuning.compare import methods as methods_lib, report, runs  # pylint: disable=import-outside-toplevel
  from prompt_tuning.eval.prompt_eval import write_json  # pylint: disable=import-outside-toplevel
  argv = sys.argv[1:] if argv is None else argv
  known, args = _flags(argv)
  entries = methods_lib.parse_methods(known.methods)
  per_method = methods_lib.parse_method_bindings(known.method_gin, entries)
  extra = [f"--gin_search_paths={args.gin_search_paths}"] if args.gin_search_paths else []
  if args.tfds_data_dir:
    extra.append(f"--tfds_data_dir={args.tfds_data_dir}")
  rows, metric = [], known.metric
  # Trained methods first decide the metric (their best checkpoint's); designs follow it.
  order = sorted(entries, key=lambda e: e.method.command == methods_lib.DESIGN)
  for entry in order:
    model_dir = os.path.join(os.path.abspath(known.output_dir), entry.label)
    row_file = os.path.join(model_dir, runs.ROW_FILE)
    if os.path.isfile(row_file):
      with open(row_file) as f:
        row = json.load(f)
      print(f"{entry.label}: done before ({row_file})")
    else:
      print(f"{entry.label}: running {entry.method.name} into {model_dir}", flush=True)
      argv_m = runs.command(entry, model_dir, args.gin_file, args.bindings,
                            per_method[entry.label], extra)
      done = runs.run(entry, model_dir, argv_m)
      if done["returncode"] != 0:
        rows.append({"label": entry.label, "method": entry.method.name,
                     "error": runs.last_error(done["log"]), "log": done["log"]})
        print(f"{entry.label}: failed (exit {done['returncode']}); see {done['log']}",
              file=sys.stderr)
        continue
      row = {**runs.read_row(entry, model_dir, metric),
             "peak_memory_gib": done["peak_rss_gib"], "wall_s": done["wall_s"]}
      write_json(row_file, row)
    metric = metric or row["metric"]
    rows.append(report.with_percent(row))
  rows.sort(key=lambda r: [e.label for e in entries].index(r["label"]))
  paths = report.write(rows, metric or "score", known.output_dir,
                       {"gin_files": args.gin_file, "bindings": args.bindings,
                        "methods": known.methods, "method_gin": known.method_gin})
  print(report.markdown(rows, metric or "score"))
  print(f"written: {paths['md']}, {paths['json']}, {paths['png']}")
  failed = [r["label"] for r in rows if "error" in r]
  if failed:
    raise RuntimeError(f"methods {failed} failed; their logs are named above and in "
                       f"{paths['md']}.")
  return 0
