"""`prompt-tuning similarity`: rank a prompt library's entries for a target task (SPoT).

    prompt-tuning similarity --library=/prompts --target=/runs/boolq_short \\
        [--output_dir=/tmp/boolq_sources]
    prompt-tuning similarity --library=/prompts --output_dir=/tmp/boolq_sources \\
        --gin_file=models/t5_1_1_base_prompt.gin --gin_file=runs/prompt_tune.gin \\
        --gin.MIXTURE_OR_TASK_NAME="'taskless_super_glue_boolq_v102'" \\
        --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/t5-base-lm-adapt'" [--metric=accuracy]

With --target (a short run on the target task, or its .npy prompt): every entry
by cosine similarity of the average prompt tokens, and of all token pairs.
With gin flags (a run's files; runs/prompt_eval.gin is added if missing): every
entry by its zero-shot score on the target's EVAL_SPLIT, the entries evaluated
as one bank in one pass. Both may be given. Tables are printed and, with
--output_dir, written as similarity.{md,json} and zero_shot.{md,json}.
"""
import argparse
import sys
from typing import Optional

from prompt_tuning.cli import flags, quiet

EVAL_GIN = "runs/prompt_eval.gin"


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="prompt-tuning similarity", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--library", required=True)
  p.add_argument("--target", default=None, help="a target run's MODEL_DIR or a .npy prompt")
  p.add_argument("--checkpoint", default="best", help="the target run's: best, latest, a step")
  p.add_argument("--metric", default=None, help="zero-shot metric (default: the task's first)")
  p.add_argument("--output_dir", default=None)
  return p


def main(argv: Optional[list] = None) -> int:
  # pylint: disable=import-outside-toplevel
  from prompt_tuning.transfer import ranking
  argv = list(sys.argv[1:] if argv is None else argv)
  args, rest = _parser().parse_known_args(argv)
  if args.target is None and not rest:
    raise ValueError("prompt-tuning similarity: expected --target (a short run on the target "
                     "task) and/or a run's gin flags (zero-shot scores); got neither.")
  quiet.setup_logging()
  if args.target is not None:
    target, checkpoint_path = ranking.read_target(args.target, args.checkpoint)
    rows = ranking.by_similarity(args.library, target, checkpoint_path)
    print(f"by prompt similarity to {args.target}:\n{ranking.format_table(rows)}")
    if args.output_dir:
      md, _ = ranking.write_report(rows, args.output_dir, "similarity", library=args.library,
                                   target=args.target)
      print(f"written: {md} (and .json)")
  if rest:
    import gin
    from prompt_tuning.eval import prompt_eval
    parsed = flags.parse_flags(rest, "prompt-tuning similarity", __doc__)
    if EVAL_GIN not in parsed.gin_file:
      parsed.gin_file.append(EVAL_GIN)
    flags.setup_gin(parsed)
    task = flags.query_macro("MIXTURE_OR_TASK_NAME")
    rows = ranking.by_zero_shot(
        args.library, initial_checkpoint_path=flags.query_macro("INITIAL_CHECKPOINT_PATH"),
        mixture_or_task_name=task, metric=args.metric, output_dir=args.output_dir,
        evaluate=gin.get_configurable(prompt_eval.evaluate_prompt))
    print(f"by zero-shot score on {task}:\n{ranking.format_table(rows)}")
    if args.output_dir:
      md, _ = ranking.write_report(rows, args.output_dir, "zero_shot", library=args.library,
                                   task=task)
      print(f"written: {md} (and .json)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
