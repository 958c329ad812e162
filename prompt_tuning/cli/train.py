"""`prompt-tuning train` / `python -m prompt_tuning.train`: T5X-style flags -> gin -> train.

    prompt-tuning train \\
      --gin_file=models/t5_1_1_base_prompt.gin \\
      --gin_file=prompts/from_class_labels.gin \\
      --gin_file=runs/prompt_tune.gin \\
      --gin.MODEL_DIR="'/tmp/rte'" \\
      --gin.MIXTURE_OR_TASK_NAME="'taskless_super_glue_rte_v102'" \\
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/t5-base-lm-adapt'" \\
      --gin.CLASS_LABELS="['entailment', 'not_entailment']"

See prompt_tuning.cli.flags for the flags (also T5X's multi-host ones:
`--multiprocess_gpu --coordinator_address=HOST:PORT --process_count=N
--process_index=I`, one command per process). Re-running the same command
resumes from MODEL_DIR's latest checkpoint.
"""
import os
import sys
from typing import Any, Callable, Optional

from prompt_tuning import sharding
from prompt_tuning.checkpoints import run_dir
from prompt_tuning.cli import flags, quiet
from prompt_tuning.prompts import export
from prompt_tuning.prompts.spec import PROMPT_PATHS


def run_train(argv, progress: bool = True, prog: str = "prompt-tuning train",
              description: Optional[str] = None, check: Optional[Callable[[], Any]] = None):
  """Parses flags and gin, runs the gin-configured `loop.train`; returns its TrainResult.

  MODEL_DIR/config.gin is written when the run starts, operative_config.gin after.
  `prog` and `description` name the command in `--help` and flag errors; `check`
  runs once gin is set up, before training (a command's own settings fail early).
  """
  args = flags.parse_flags(argv, prog, description or __doc__, multihost=True)
  flags.initialize_distributed(args)  # before anything below touches a device
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.train import loop  # pylint: disable=import-outside-toplevel
  flags.setup_gin(args)
  if check is not None:
    check()
  configured = gin.get_configurable(loop.train)
  model_dir = gin.query_parameter("%MODEL_DIR")
  if not isinstance(model_dir, str) or not model_dir:
    raise ValueError(f"MODEL_DIR={model_dir!r}; expected a directory, e.g. "
                     "--gin.MODEL_DIR=\"'/tmp/run'\".")
  result = configured(gin_config=gin.config_str(), progress=progress)
  if sharding.is_primary():
    run_dir.save_operative_config(model_dir, gin.operative_config_str())
  return result


def main(argv: Optional[list] = None) -> int:
  quiet.setup_logging()
  argv = sys.argv[1:] if argv is None else argv
  result = run_train(argv)
  if not sharding.is_primary():
    return 0
  if result.start_step:
    print(f"resumed {result.model_dir} from step {result.start_step}")
  print(f"done: {result.step} steps in {result.model_dir}")
  if result.best:
    print(f"best {result.best['metric']} = {result.best['value']:.4g} at step "
          f"{result.best['step']}")
  if os.path.basename(result.prompt_path) in {export.npy_name(p) for p in PROMPT_PATHS}:
    print(f"prompt: {result.prompt_path}")
  else:  # a method without soft prompts (model tuning, LoRA, ...): its arrays
    print(f"trained params: {os.path.dirname(result.prompt_path)}")
  if result.task_prompts_dir:
    print(f"per-task prompts (a bank for prompt-tuning infer): {result.task_prompts_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
