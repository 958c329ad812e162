"""`prompt-tuning eval`: a run's gin files + runs/prompt_eval.gin -> the task's metrics.

    prompt-tuning eval --gin_file=models/t5_1_1_base_prompt.gin \\
      --gin_file=runs/prompt_tune.gin --gin_file=runs/prompt_eval.gin \\
      --gin.MODEL_DIR="'/tmp/boolq'" \\
      --gin.MIXTURE_OR_TASK_NAME="'taskless_super_glue_boolq_v102'" \\
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/t5-base-lm-adapt'"

EVAL_CHECKPOINT ("best", "latest", a step) or EVAL_PROMPT_FILE choose the
prompt; the metrics are printed and written to MODEL_DIR/eval/.
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
  for name, value in sorted(results.items()):
    print(f"{name}: {value:.4g}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
