"""`prompt-tuning domain-shift`: tune on SQuAD, then evaluate zero-shot on every MRQA domain.

    prompt-tuning domain-shift --gin_file=models/t5_1_1_base_prompt.gin \\
      --gin_file=prompts/sampled_vocab.gin --gin_file=runs/mrqa_domain_shift.gin \\
      --gin.MODEL_DIR="'/runs/squad'" \\
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/t5-base-lm-adapt'"

The paper's section 5 (Table 1). Trains as `prompt-tuning train` does (re-running
resumes, and a finished run goes straight to evaluation), then evaluates the best
prompt on each of DOMAIN_SHIFT_DOMAINS (SQuAD and MRQA's six out-of-domain sets)
and prints and writes the table, one row per domain, to
MODEL_DIR/eval/domain_shift/domain_shift.{md,json}.
"""
import sys
from typing import Optional

from prompt_tuning import sharding
from prompt_tuning.cli import quiet, train as train_cli


def main(argv: Optional[list] = None) -> int:
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.data import mrqa  # pylint: disable=import-outside-toplevel
  from prompt_tuning.eval import domain_shift  # pylint: disable=import-outside-toplevel
  quiet.setup_logging()
  argv = sys.argv[1:] if argv is None else argv
  check = lambda: mrqa.get_domains(gin.query_parameter("%DOMAIN_SHIFT_DOMAINS"))
  result = train_cli.run_train(argv, prog="prompt-tuning domain-shift", description=__doc__,
                               check=check)
  if not sharding.is_primary():
    return 0  # evaluation runs on one device, in process 0
  print(f"trained: {result.step} steps in {result.model_dir}")
  rows = gin.get_configurable(domain_shift.evaluate_domains)()
  print(domain_shift.markdown(rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
