"""`prompt-tuning library`: a directory of trained prompts with their task, model and score.

    prompt-tuning library add --library=/prompts --model_dir=/runs/mnli [--name=mnli] \\
        [--checkpoint=best] [--overwrite]
    prompt-tuning library list --library=/prompts [--json]
    prompt-tuning library tune --library=/prompts [--name=boolq] [--overwrite] \\
        --gin_file=... --gin.MODEL_DIR="'/runs/boolq'" ...   (prompt-tuning train's flags)

`add` copies a run's prompt (default its best) into a new entry, with the run's
task, frozen model, prompt length and best score; `tune` trains a new task
against the library's frozen model and adds it (continual learning: the other
entries are left as they are). An existing entry is replaced only with
--overwrite. The library is a prompt bank: PROMPTS='/prompts' in
`prompt-tuning infer` serves every entry, each line naming its "task".
"""
import argparse
import json
import sys
from typing import Optional

from prompt_tuning.cli import flags, quiet


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="prompt-tuning library", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="action", required=True)
  add = sub.add_parser("add", help="add a trained run's prompt")
  add.add_argument("--library", required=True)
  add.add_argument("--model_dir", required=True, help="the run (MODEL_DIR)")
  add.add_argument("--name", default=None, help="entry name (default: the run's task)")
  add.add_argument("--checkpoint", default="best", help="best, latest or a step")
  add.add_argument("--overwrite", action="store_true")
  show = sub.add_parser("list", help="the entries")
  show.add_argument("--library", required=True)
  show.add_argument("--json", action="store_true", help="print JSON instead of a table")
  tune = sub.add_parser("tune", help="train a new task's prompt into the library "
                        "(then prompt-tuning train's flags)")
  tune.add_argument("--library", required=True)
  tune.add_argument("--name", default=None, help="entry name (default: the task)")
  tune.add_argument("--overwrite", action="store_true")
  return p


def _describe(entry) -> str:
  score = "-" if entry.value is None else f"{entry.metric} = {entry.value:.4g} (step {entry.step})"
  return (f"{entry.name}: task {entry.task}, P = {entry.prompt_length}, d_model "
          f"{entry.model['d_model']}, {score}")


def main(argv: Optional[list] = None) -> int:
  # pylint: disable=import-outside-toplevel
  from prompt_tuning.library import store
  argv = list(sys.argv[1:] if argv is None else argv)
  args, rest = _parser().parse_known_args(argv)
  if rest and args.action != "tune":
    raise ValueError(f"prompt-tuning library {args.action}: unknown flags {rest}.")
  quiet.setup_logging()
  if args.action == "add":
    entry = store.add(args.library, args.model_dir, args.name, args.checkpoint, args.overwrite)
    print(f"added {_describe(entry)} -> {entry.directory}")
  elif args.action == "list":
    found = store.entries(args.library)
    if args.json:
      print(json.dumps([{"name": e.name, **e.to_json()} for e in found], indent=1))
    else:
      print("\n".join(_describe(e) for e in found) or f"{args.library}: no entries")
  else:
    from prompt_tuning.cli import train as train_cli

    def check():  # before training: the name is free and the frozen model is the library's
      task = flags.query_macro("MIXTURE_OR_TASK_NAME")
      store.check_can_add(args.library, args.name or task,
                          flags.query_macro("INITIAL_CHECKPOINT_PATH"), args.overwrite)

    result = train_cli.run_train(rest, prog="prompt-tuning library tune", check=check)
    entry = store.add(args.library, result.model_dir, args.name, overwrite=args.overwrite)
    print(f"done: {result.step} steps in {result.model_dir}")
    print(f"added {_describe(entry)} -> {entry.directory}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
