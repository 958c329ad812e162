"""`prompt-tuning show-tasks`: list the registered tasks, or print a task's examples.

  prompt-tuning show-tasks [FILTER]
  prompt-tuning show-tasks --task NAME [--split S] [-n K] [--vocabulary PATH]
      [--tfds_data_dir DIR] [--inputs_length L] [--targets_length T] [--scan N]

The first form lists task and mixture names containing FILTER, with their
splits and label words. The second prints K preprocessed examples of a split
(input and target text, token counts with EOS, the other fields), the
verbalizer and metrics, and how many examples the lengths (TASK_FEATURE_LENGTHS)
truncate: over the K shown, or the first N with --scan (--scan 0: the split).
"""
import argparse
import sys
from typing import Optional, Sequence

from prompt_tuning.data.show_tasks import list_tasks, show_task


def _parser() -> argparse.ArgumentParser:
  from prompt_tuning.data import vocab  # pylint: disable=import-outside-toplevel
  p = argparse.ArgumentParser(prog="prompt-tuning show-tasks",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("filter", nargs="?", default="", help="substring of the names to list")
  p.add_argument("--task", help="print examples of this task")
  p.add_argument("--split", help="split to read (default: validation, else the first)")
  p.add_argument("-n", "--num_examples", type=int, default=3, help="examples to print")
  p.add_argument("--vocabulary", default=vocab.DEFAULT_VOCABULARY_PATH,
                 help="SentencePiece .model, HF T5 dir with spiece.model, or gs:// path")
  p.add_argument("--extra_ids", type=int, default=vocab.DEFAULT_EXTRA_IDS)
  p.add_argument("--tfds_data_dir", help="where TFDS data is prepared")
  p.add_argument("--inputs_length", type=int, default=512, help="TASK_FEATURE_LENGTHS inputs")
  p.add_argument("--targets_length", type=int, default=16, help="TASK_FEATURE_LENGTHS targets")
  p.add_argument("--scan", type=int, default=None,
                 help="count truncation over the first N examples (0: all; default: those shown)")
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
  if args.num_examples < 0 or (args.scan is not None and args.scan < 0):
    print("show-tasks: -n and --scan must be >= 0.", file=sys.stderr)
    return 2
  from prompt_tuning.data import tasks, vocab  # pylint: disable=import-outside-toplevel
  try:
    vocabulary = vocab.get_vocabulary(args.vocabulary, args.extra_ids)
  except (FileNotFoundError, ValueError) as e:
    print(f"show-tasks: {e}", file=sys.stderr)
    return 2
  tasks.register_tasks(vocabulary, tfds_data_dir=args.tfds_data_dir)
  if not args.task:
    return list_tasks(args.filter)
  lengths = {"inputs": args.inputs_length, "targets": args.targets_length}
  return show_task(args.task, args.split, args.num_examples, lengths, args.scan)


if __name__ == "__main__":
  sys.exit(main())
