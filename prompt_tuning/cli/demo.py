"""`prompt-tuning demo`: prompt tuning end to end, offline, in about a minute on 2 CPU cores.

The frozen model is the project's tiny T5 1.1 (prompt_tuning/assets/demo_t5),
trained on synthetic tasks that each start with a task word. The demo tunes a
soft prompt for "majority" with the task word removed, through the same gin
configs (configs/runs/demo.gin), train loop, checkpoints and evaluator as a
real run, then reports accuracy before and after and writes a plot.

Re-running with the same --output_dir resumes (a finished run is re-evaluated). A
demo run there that cannot be resumed (made by another install, whose demo model
lives elsewhere, or with another --seed) is replaced by a fresh one; a directory
holding anything else is refused.
"""
import argparse
import dataclasses
import os
import shutil
import sys
import time
from typing import Optional

import numpy as np

from prompt_tuning.cli import quiet

TASK = "taskless_demo_majority"
DEFAULT_OUTPUT_DIR = "/tmp/prompt_tuning_demo"


@dataclasses.dataclass
class DemoResult:
  """Accuracies are percentages on held-out inputs (never seen in training)."""
  output_dir: str
  accuracy_before: float          # validation, untrained (class-label init) prompt
  illegal_before: float           # % of outputs that are not a label, untrained prompt
  accuracy_validation: float      # validation, best prompt
  accuracy_test: float            # test split, best prompt
  prompt_path: str
  plot_path: str
  seconds: float


def run(output_dir: str = DEFAULT_OUTPUT_DIR, train_steps: Optional[int] = None,
        eval_period: Optional[int] = None, seed: int = 0, progress: bool = True,
        log=print) -> DemoResult:
  """Runs the demo (see module doc) and returns its numbers and files."""
  # pylint: disable=import-outside-toplevel
  from prompt_tuning import paths, tree
  from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
  from prompt_tuning.cli import train as train_cli
  from prompt_tuning.demo import plot
  from prompt_tuning.eval.evaluator import Evaluator
  from prompt_tuning.models import Transformer
  from prompt_tuning.prompts import spec as spec_lib
  # pylint: enable=import-outside-toplevel

  start = time.time()
  model_dir = paths.demo_model_dir()
  if not os.path.isfile(os.path.join(model_dir, "model.safetensors")):
    raise FileNotFoundError(f"the demo model is missing from {model_dir}; rebuild it with "
                            f"python -m prompt_tuning.demo.pretrain --output_dir {model_dir}")
  log(f"frozen model: {model_dir} (tiny T5 1.1 trained on synthetic tasks with task words)")
  log(f"task: {TASK} -- 'majority' without its task word: is the input mostly animals "
      "or colors?")
  argv = ["--gin_file=runs/demo.gin", f"--gin.MODEL_DIR={output_dir!r}",
          f"--gin.RANDOM_SEED={seed}"]
  if train_steps is not None:
    argv.append(f"--gin.TRAIN_STEPS={int(train_steps)}")
  if eval_period is not None:
    argv.append(f"--gin.EVAL_PERIOD={int(eval_period)}")
  from prompt_tuning.train import loop  # pylint: disable=import-outside-toplevel
  try:
    result = train_cli.run_train(argv, progress=progress)
  except (loop.IncompatibleRunError, run_dir.StateMismatchError) as e:
    meta = run_dir.read_meta(output_dir)
    if (meta.get("data") or {}).get("mixture_or_task_name") != TASK:
      raise ValueError(f"--output_dir={output_dir} holds another run "
                       f"({quiet.error_message(e)}); choose another --output_dir.") from e
    log(f"{output_dir} holds a demo run that cannot be resumed "
        f"({quiet.error_message(e)}); starting fresh.")
    shutil.rmtree(output_dir)
    result = train_cli.run_train(argv, progress=progress)

  evals = [r for r in result.history if r["kind"] == "eval"]
  if not evals:  # a resumed, already finished run: read the log written earlier
    evals = [r for r in run_dir.read_metrics(output_dir) if r["kind"] == "eval"]
  first = min(evals, key=lambda r: r["step"])
  key = f"{TASK}/accuracy"

  # Held-out test accuracy of the best prompt, with the run's own evaluator.
  config, frozen = frozen_lib.load_frozen(model_dir, dropout_rate=0.0)
  prompt = np.load(result.prompt_path)
  model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(prompt.shape[0]))
  trainable = tree.unflatten({spec_lib.PROMPT_PATH: prompt})
  tester = Evaluator(model, TASK, {"inputs": 16, "targets": 8}, batch_size=100,
                     split="test")
  test = tester.evaluate(trainable, frozen, result.step)
  plot_path = plot.plot_curves(output_dir, os.path.join(output_dir, "curves.png"), TASK)
  out = DemoResult(output_dir=output_dir, accuracy_before=first[key],
                   illegal_before=first.get(f"{TASK}/illegal_label_rate", float("nan")),
                   accuracy_validation=result.best["value"] if result.best else float("nan"),
                   accuracy_test=test[key], prompt_path=result.prompt_path, plot_path=plot_path,
                   seconds=time.time() - start)
  log("")
  log(f"accuracy before tuning (untrained prompt, validation): {out.accuracy_before:.1f}% "
      f"(chance 50%; {out.illegal_before:.0f}% of answers were not a label at all)")
  log(f"accuracy after tuning (best prompt, validation):       {out.accuracy_validation:.1f}%")
  log(f"accuracy after tuning (best prompt, held-out test):    {out.accuracy_test:.1f}%")
  log(f"prompt ({prompt.shape[0]} x {prompt.shape[1]}) saved to {out.prompt_path}")
  log(f"curves: {out.plot_path}")
  log(f"metrics: {os.path.join(output_dir, run_dir.METRICS_FILE)} (TensorBoard: {output_dir})")
  log(f"done in {out.seconds:.0f}s")
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="prompt-tuning demo", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR)
  parser.add_argument("--train_steps", type=int, default=None,
                      help="default: TRAIN_STEPS of configs/runs/demo.gin (300)")
  parser.add_argument("--eval_period", type=int, default=None)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no_progress", action="store_true")
  args = parser.parse_args(argv)
  quiet.setup_logging()
  result = run(args.output_dir, args.train_steps, args.eval_period, args.seed,
               progress=not args.no_progress)
  return 0 if result.accuracy_test >= 0 else 1


if __name__ == "__main__":
  sys.exit(main())
