"""Multi-task prompt tuning against one prompt per task, on the demo model.

    python benchmarks/multitask.py                        # ~10 min on 2 CPU cores
    python benchmarks/multitask.py --modes add --steps 300 --json_out /tmp/mt.json

The five synthetic tasks of the offline demo with their task words removed
(`taskless_demo_<task>`: only the prompt can say which task to do). Single-task:
one run per task (`--single_steps` steps of batch 32, best prompt by validation
accuracy). Multi-task: one run over the mixture of all five for each of `--modes`
(configs/methods/multitask_prompts.gin; `--steps` steps of batch 32, so each task sees
about a fifth of the examples a single-task run sees), best bank by the tasks'
mean validation accuracy. Every prompt starts from the same sampled-vocabulary
init (no class labels: the multi-task shared prompt serves every task).

Each task's held-out (test split) accuracy is measured with its exported prompt
alone (MODEL_DIR/tasks/<task>.npy for the multi-task runs) on the frozen model.
Params: what each setting trains. Prints a table and, last, one JSON line (also
written to --json_out if given).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

from output import write_result

TASKS = ("first", "last", "count", "majority", "has_cat")
LENGTHS = {"inputs": 16, "targets": 8}


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--modes", default="add,concat,low_rank",
                 help="comma-separated multi-task modes (prompts.multitask.MODES)")
  p.add_argument("--steps", type=int, default=600, help="multi-task run steps")
  p.add_argument("--single_steps", type=int, default=300, help="steps of each single run")
  p.add_argument("--prompt_length", type=int, default=8)
  p.add_argument("--eval_period", type=int, default=100)
  p.add_argument("--output_dir", default=None, help="where the runs go (default: a temp dir)")
  p.add_argument("--json_out", default=None)
  return p.parse_args(argv)


def _test_accuracy(task: str, prompt: np.ndarray) -> float:
  """Held-out accuracy of one [P, D] prompt on `task`'s test split."""
  from prompt_tuning import paths  # pylint: disable=import-outside-toplevel
  from prompt_tuning.checkpoints import frozen as frozen_lib  # pylint: disable=import-outside-toplevel
  from prompt_tuning.eval.evaluator import Evaluator  # pylint: disable=import-outside-toplevel
  from prompt_tuning.models import Transformer  # pylint: disable=import-outside-toplevel
  from prompt_tuning.prompts import spec as spec_lib  # pylint: disable=import-outside-toplevel
  config, frozen = frozen_lib.load_frozen(paths.demo_model_dir(), dropout_rate=0.0)
  model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(prompt.shape[0]))
  evaluator = Evaluator(model, task, LENGTHS, 100, split="test")
  results = evaluator.evaluate(frozen_lib.with_prompts({}, {spec_lib.PROMPT_PATH: prompt}),
                               frozen, 0)
  return results[f"{task}/accuracy"]


def run(args) -> dict:
  from prompt_tuning import paths  # pylint: disable=import-outside-toplevel
  from prompt_tuning.demo import tasks as demo_tasks  # pylint: disable=import-outside-toplevel
  from prompt_tuning.prompts import initializers, multitask  # pylint: disable=import-outside-toplevel
  from prompt_tuning.train import loop  # pylint: disable=import-outside-toplevel
  demo_tasks.register_demo_tasks(demo_tasks.demo_vocabulary())
  root = args.output_dir or tempfile.mkdtemp(prefix="multitask_bench_")
  names = [demo_tasks.task_name(t, taskless=True) for t in TASKS]
  common = dict(task_feature_lengths=LENGTHS, batch_size=32,
                initial_checkpoint_path=paths.demo_model_dir(),
                prompt_length=args.prompt_length, eval_period=args.eval_period,
                progress=False)
  rows = []
  start = time.time()
  single = {}
  for name in names:
    result = loop.train(model_dir=os.path.join(root, f"single_{name}"),
                        mixture_or_task_name=name, train_steps=args.single_steps,
                        prompt_init=initializers.sampled_vocab(128), **common)
    single[name] = _test_accuracy(name, np.load(result.prompt_path))
  d_model = np.load(result.prompt_path).shape[1]
  rows.append({"setting": "one prompt per task", "steps": args.single_steps * len(names),
               "params": len(names) * args.prompt_length * d_model,
               **{n: single[n] for n in names}})
  for mode in args.modes.split(","):
    spec = multitask.MultiTaskSpec(tuple(names), mode)
    result = loop.train(model_dir=os.path.join(root, f"multitask_{mode}"),
                        mixture_or_task_name=demo_tasks.TASKLESS_MIXTURE,
                        train_steps=args.steps, multitask=spec,
                        prompt_init=initializers.sampled_vocab(128), **common)
    params = sum(int(np.prod(s)) for s in spec.shapes(args.prompt_length, d_model).values())
    rows.append({"setting": f"multi-task ({mode})", "steps": args.steps, "params": params,
                 **{n: _test_accuracy(n, np.load(os.path.join(result.task_prompts_dir,
                                                              f"{n}.npy")))
                    for n in names}})
  for row in rows:
    row["mean"] = float(np.mean([row[n] for n in names]))
  return {"benchmark": "multitask", "model": "demo (tiny T5 1.1)", "tasks": names,
          "prompt_length": args.prompt_length, "batch_size": 32, "split": "test",
          "rows": rows, "seconds": time.time() - start}


def table(result: dict) -> str:
  names = result["tasks"]
  short = [n.replace("taskless_demo_", "") for n in names]
  lines = ["| setting | steps | params | " + " | ".join(short) + " | mean |",
           "|---" * (len(names) + 4) + "|"]
  for row in result["rows"]:
    lines.append(f"| {row['setting']} | {row['steps']} | {row['params']:,} | "
                 + " | ".join(f"{row[n]:.1f}" for n in names) + f" | {row['mean']:.1f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _flags(argv)
  result = run(args)
  print(table(result))
  write_result(result, args.json_out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
