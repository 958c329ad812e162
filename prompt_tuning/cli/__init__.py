"""`prompt-tuning` console script: one subcommand per job, one module per subcommand.

Each subcommand is a module of this package with a `main(argv)` function,
imported only when it is asked for, so `prompt-tuning show-tasks` does not pay
for JAX start-up. `flags` turns T5X-style flags into gin; `configurables`
holds the only explicit gin registrations.
"""
import importlib
import sys

# subcommand -> (module holding main(argv), one-line help)
_COMMANDS = {
    "demo": ("prompt_tuning.cli.demo", "offline end-to-end demo on a tiny T5 1.1"),
    "train": ("prompt_tuning.cli.train",
              "prompt-tune a frozen T5 from gin configs (T5X flags)"),
    "eval": ("prompt_tuning.cli.eval", "evaluate a prompt checkpoint"),
    "export": ("prompt_tuning.cli.export", "write a prompt as a PEFT adapter or .npy files"),
    "nearest": ("prompt_tuning.cli.nearest", "a prompt's nearest vocabulary tokens and norms"),
    "show-tasks": ("prompt_tuning.cli.show_tasks",
                   "list registered seqio tasks / print examples"),
}


def _usage() -> str:
  lines = ["usage: prompt-tuning <command> [flags]", "", "commands:"]
  for name, (_, text) in _COMMANDS.items():
    lines.append(f"  {name:<12} {text}")
  return "\n".join(lines)


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(_usage())
    return 0
  name, rest = argv[0], argv[1:]
  if name not in _COMMANDS:
    print(f"prompt-tuning: unknown command {name!r}; expected one of "
          f"{sorted(_COMMANDS)}.\n\n{_usage()}", file=sys.stderr)
    return 2
  module = importlib.import_module(_COMMANDS[name][0])
  return int(module.main(rest) or 0)


if __name__ == "__main__":
  sys.exit(main())
