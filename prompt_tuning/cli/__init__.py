"""`prompt-tuning` console script: one subcommand per job, one module per subcommand.

Each subcommand is a module of this package with a `main(argv)` function,
imported only when it is asked for, so `prompt-tuning show-tasks` does not pay
for JAX start-up. `flags` turns T5X-style flags into gin; `configurables`
holds the only explicit gin registrations; `quiet` keeps the output to what the
user needs.

Every command takes `--debug` (a failure shows its traceback; by default it is
one message naming what was expected and what was found, exit status 1) and
`--verbose` (every library's logging).
"""
import importlib
import sys

from prompt_tuning.cli import quiet

# subcommand -> (module holding main(argv), one-line help)
_COMMANDS = {
    "demo": ("prompt_tuning.cli.demo", "offline end-to-end demo on a tiny T5 1.1"),
    "train": ("prompt_tuning.cli.train",
              "prompt-tune a frozen T5 from gin configs (T5X flags)"),
    "eval": ("prompt_tuning.cli.eval", "evaluate a prompt checkpoint (or an ensemble)"),
    "infer": ("prompt_tuning.cli.infer", "predictions for inputs, one or many prompts"),
    "export": ("prompt_tuning.cli.export", "write a prompt as a PEFT adapter or .npy files"),
    "nearest": ("prompt_tuning.cli.nearest", "a prompt's nearest vocabulary tokens and norms"),
    "domain-shift": ("prompt_tuning.cli.domain_shift",
                     "tune on SQuAD, evaluate zero-shot on every MRQA domain (a table)"),
    "design": ("prompt_tuning.cli.design",
               "evaluate a hard text prompt (prompt design), nothing trained"),
    "compare": ("prompt_tuning.cli.compare",
                "every method on one frozen model and task: one table and plot"),
    "library": ("prompt_tuning.cli.library",
                "a prompt library: add a run, list, tune a new task into it"),
    "similarity": ("prompt_tuning.cli.similarity",
                   "rank a library's prompts for a target task (SPoT)"),
    "show-tasks": ("prompt_tuning.cli.show_tasks",
                   "list registered seqio tasks / print examples"),
}


def _usage() -> str:
  lines = ["usage: prompt-tuning <command> [flags] [--debug] [--verbose]", "", "commands:"]
  for name, (_, text) in _COMMANDS.items():
    lines.append(f"  {name:<12} {text}")
  return "\n".join(lines)


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  debug, verbose = "--debug" in argv, "--verbose" in argv
  argv = [a for a in argv if a not in ("--debug", "--verbose")]
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(_usage())
    return 0
  name, rest = argv[0], argv[1:]
  if name not in _COMMANDS:
    print(f"prompt-tuning: unknown command {name!r}; expected one of "
          f"{sorted(_COMMANDS)}.\n\n{_usage()}", file=sys.stderr)
    return 2
  quiet.setup_logging(verbose)
  try:
    module = importlib.import_module(_COMMANDS[name][0])
    return int(module.main(rest) or 0)
  except KeyboardInterrupt:
    print(f"prompt-tuning {name}: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-except
    if debug:
      raise
    print(f"prompt-tuning {name}: {quiet.error_message(e)}\n(--debug shows the traceback)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
