"""`prompt-tuning design`: the frozen model on a task told in words (prompt design), no training.

    prompt-tuning design --gin_file=runs/demo.gin --gin_file=methods/prompt_design.gin \\
      --gin.DESIGN_TEMPLATE="'majority: {inputs}'" --gin.MODEL_DIR="'/tmp/design'"

DESIGN_TEMPLATE holds {inputs} (and optionally {demos}); DESIGN_NUM_SHOTS draws
k demonstrations from the train split. The metrics are printed and written to
MODEL_DIR/eval/design_<split>.json with the per-example predictions.
"""
import sys
from typing import Optional

from prompt_tuning.cli import flags, quiet


def main(argv: Optional[list] = None) -> int:
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.eval import prompt_design  # pylint: disable=import-outside-toplevel
  quiet.setup_logging()
  argv = sys.argv[1:] if argv is None else argv
  flags.setup_gin(flags.parse_flags(argv, "prompt-tuning design", __doc__))
  results = gin.get_configurable(prompt_design.evaluate_design)()
  print("\n".join(f"{name}: {value:.4g}" for name, value in sorted(results.items())))
  return 0
