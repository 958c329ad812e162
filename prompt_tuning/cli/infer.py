"""`prompt-tuning infer`: frozen model + prompt(s) + inputs -> predictions as JSON lines.

    prompt-tuning infer --gin_file=models/t5_1_1_base_prompt.gin \\
      --gin_file=runs/prompt_infer.gin [--gin_file=decoding/beam_search.gin] \\
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/t5-base-lm-adapt'" --gin.PROMPTS="'/runs/rte'" \\
      --gin.INFER_INPUT_FILE="'inputs.jsonl'" --gin.INFER_OUTPUT_FILE="'out.jsonl'" \\
      [--batch_size=64] [--frozen_params_dtype=bfloat16]

See configs/runs/prompt_infer.gin for what is read and written, configs/decoding/
for the modes (greedy, beam search, nucleus sampling, rank classification), and
prompt_tuning.cli.flags for the gin flags. `--batch_size` and
`--frozen_params_dtype` are BATCH_SIZE and FROZEN_PARAMS_DTYPE.
"""
import sys
from typing import Optional

from prompt_tuning.cli import flags, quiet


def main(argv: Optional[list] = None) -> int:
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.infer import predictor  # pylint: disable=import-outside-toplevel
  quiet.setup_logging()
  argv = list(sys.argv[1:] if argv is None else argv)
  shortcuts = {"--batch_size": "BATCH_SIZE", "--frozen_params_dtype": "FROZEN_PARAMS_DTYPE"}
  rest = []
  for arg in argv:
    name, _, value = arg.partition("=")
    if name in shortcuts:
      if not value:
        raise ValueError(f"{name} takes a value: {name}=VALUE.")
      rest.append(f"--gin.{shortcuts[name]}=" + (value if name == "--batch_size"
                                                  else repr(value)))
    else:
      rest.append(arg)
  flags.setup_gin(flags.parse_flags(rest, "prompt-tuning infer", __doc__))
  summary = gin.get_configurable(predictor.infer)()
  print(f"{summary['inputs']} predictions ({len(summary['prompts'])} prompt"
        f"{'s' if len(summary['prompts']) > 1 else ''}) written to {summary['output_file']} "
        f"({summary['inputs_per_second']:.1f} inputs/s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
