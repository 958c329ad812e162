"""`prompt-tuning eval`: a run's gin files + runs/prompt_eval.gin -> the task's metrics.

    prompt-tuning eval --gin_file=models/t5_1_1_base_prompt.gin \\
      --gin_file=runs/prompt_tune.gin --gin_file=runs/prompt_eval.gin \\
      --gin.MODEL_DIR="'/tmp/boolq'" \\
      --gin.MIXTURE_OR_TASK_NAME="'taskless_super_glue_boolq_v102'" \\
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/t5-base-lm-adapt'"

EVAL_CHECKPOINT ("best", "latest", a step) or EVAL_PROMPT_FILE choose the
prompt; EVAL_PROMPT_FILES="['/runs/a', '/runs/b', ...]" evaluates an ensemble. The
metrics are printed and written to MODEL_DIR/eval/ with the per-example predictions.
"""
import sys
from typing import Optional

from prompt_tuning.cli import flags, quiet


def main(argv: Optional[list] = None) -> int:
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.eval import prompt_eval  # pylint: disable=import-outside-toplevel
  quiet.setup_logging()
  argv = sys.argv[1:] if argv is None else argv
  flags.setup_gin(flags.parse_flags(argv, "prompt-tuning eval", __doc__))
  results = gin.get_configurable(prompt_eval.evaluate_prompt)()
  print(format_results(results))
  return 0


def format_results(results: dict) -> str:
  """One line per metric; for an ensemble its members, their mean and std, the ensemble."""
  if "members" not in results:
    return "\n".join(f"{name}: {value:.4g}" for name, value in sorted(results.items()))
  names = results.get("names") or [str(i) for i in range(len(results["members"]))]
  lines = ["metric | " + " | ".join(names) + " | mean ± std | ensemble"]
  for key in sorted(results["mean"]):
    members = " | ".join(f"{m[key]:.4g}" for m in results["members"])
    ensembled = results["ensemble"].get(key)
    lines.append(f"{key} | {members} | {results['mean'][key]:.4g} ± {results['std'][key]:.3g} "
                 f"| {'-' if ensembled is None else f'{ensembled:.4g}'}")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
