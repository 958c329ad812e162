"""Continual learning on the demo model: task A, then task B; what is left of A.

    python benchmarks/continual.py --json_out benchmarks/results/continual/continual_demo_cpu.json

(about 5 minutes on 2 shared CPU cores.) A = `taskless_demo_majority_long` (mostly animals
or colors, 9- and 11-word inputs), B = `taskless_demo_has_cat` (is "cat" among 3 to
7 words? yes/no). The inputs' lengths tell the tasks apart, so one model could in
principle serve both.

  prompt tuning   A's prompt, then B's, each tuned into one library against the same
                  frozen model (`transfer.continual.tune_into_library`); A is then
                  served from the grown library (the library is one bank)
  model tuning    every weight tuned on A (configs/methods/model_tuning.gin's
                  optimizer), then on B starting from the A-tuned weights
                  (INITIAL_CHECKPOINT_PATH = the A run's MODEL_DIR); A is scored with
                  the B-tuned model

Held-out accuracy on --eval_examples validation inputs of each task (the best
checkpoint of each run, as `prompt-tuning eval` reads it). Prints a table and, last,
one JSON line (also written to --json_out).
"""
import argparse
import os
import sys
import tempfile
import time

import output

LENGTHS = {"inputs": 16, "targets": 8}
A, B = "taskless_demo_majority_long", "taskless_demo_has_cat"
LABELS = {A: ["animal", "color"], B: ["no", "yes"]}


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--steps", type=int, default=100, help="train steps per task")
  p.add_argument("--eval_period", type=int, default=25)
  return output.parse_demo_flags(p, argv)


def _bytes(directory: str) -> int:
  return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)
             if n.endswith(".npy"))


def run(args) -> dict:
  # pylint: disable=import-outside-toplevel
  from prompt_tuning import paths
  from prompt_tuning.checkpoints import run_dir
  from prompt_tuning.demo import tasks as demo_tasks
  from prompt_tuning.eval import prompt_eval
  from prompt_tuning.library import store
  from prompt_tuning.prompts import initializers
  from prompt_tuning.train import loop, optim
  from prompt_tuning.transfer import continual

  model = paths.demo_model_dir()
  vocab = demo_tasks.demo_vocabulary()
  register = lambda: demo_tasks.register_demo_tasks(vocab)
  work = args.work_dir or tempfile.mkdtemp(prefix="continual_")
  library = os.path.join(work, "library")
  start = time.time()
  common = dict(task_feature_lengths=LENGTHS, train_steps=args.steps, batch_size=args.batch,
                eval_period=args.eval_period, eval_num_examples=args.eval_examples,
                progress=False, log_period=args.eval_period, register_tasks=register)

  def score(task, **where):
    results = prompt_eval.evaluate_prompt(
        mixture_or_task_name=task, task_feature_lengths=LENGTHS, batch_size=args.batch,
        num_examples=args.eval_examples, register_tasks=register,
        output_dir=os.path.join(work, "eval"), **where)
    return results[f"{task}/accuracy"]

  # ---------------------------------------------------------------- prompt tuning
  prompt = {}
  for task in (A, B):
    continual.tune_into_library(
        library, model_dir=os.path.join(work, f"prompt_{task}"), initial_checkpoint_path=model,
        mixture_or_task_name=task, prompt_length=args.prompt_length,
        prompt_init=initializers.class_labels(LABELS[task], vocab,
                                              initializers.sampled_vocab(128)),
        optimizer=optim.paper_adafactor(0.3), **common)
    # every task tuned so far, served from the library as it is now
    for seen in (A, B)[:(A, B).index(task) + 1]:
      prompt[f"{seen} after {task}"] = score(
          seen, initial_checkpoint_path=model,
          prompt_file=store.get(library, seen).directory)

  # ----------------------------------------------------------------- model tuning
  tuned, initial = {}, model
  for task in (A, B):
    result = loop.train(
        model_dir=os.path.join(work, f"model_{task}"), initial_checkpoint_path=initial,
        mixture_or_task_name=task, prompt_length=0, trainable_regex=".*",
        optimizer=optim.paper_adafactor(1e-3, multiply_by_parameter_scale=True,
                                        factored=True, weight_decay_rate=None), **common)
    for seen in (A, B)[:(A, B).index(task) + 1]:
      tuned[f"{seen} after {task}"] = score(seen, initial_checkpoint_path=initial,
                                            model_dir=result.model_dir)
    initial = result.model_dir
  rows = [{"method": "prompt tuning (library)", **prompt,
           "stored_bytes": sum(_bytes(e.directory) for e in store.entries(library))},
          {"method": "model tuning (sequential)", **tuned,
           "stored_bytes": _bytes(run_dir.best_dir(initial))}]
  return {"task_a": A, "task_b": B, "rows": rows,
          "settings": {k: v for k, v in vars(args).items() if k not in ("json_out",
                                                                         "work_dir")},
          "seconds": round(time.time() - start, 1)}


def table(result: dict) -> str:
  a, b = result["task_a"], result["task_b"]
  lines = ["| method | A after tuning A | A after tuning B | B after tuning B | stored for A "
           "and B |", "|---|---|---|---|---|"]
  for r in result["rows"]:
    lines.append(f"| {r['method']} | {r[f'{a} after {a}']:.1f}% | {r[f'{a} after {b}']:.1f}% | "
                 f"{r[f'{b} after {b}']:.1f}% | {r['stored_bytes'] / 1024:.1f} KiB |")
  return "\n".join(lines)


def main(argv=None) -> int:
  return output.run_and_report(_flags(argv), run, table)


if __name__ == "__main__":
  sys.exit(main())
