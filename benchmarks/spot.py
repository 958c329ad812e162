"""SPoT on the demo model: start a target task from a related task's prompt.

    python benchmarks/spot.py --json_out benchmarks/results/spot/spot_demo_cpu.json

(about 5 minutes on 2 CPU cores.) The frozen model is the demo's tiny T5 1.1.

Target: `taskless_demo_majority_long`, "majority" (mostly animals or colors?) on 9-
and 11-word inputs, which the demo model never saw (it was pretrained on 3 to 7 words).
Sources, a prompt library: the five taskless demo tasks, each prompt-tuned for
--source_steps from sampled-vocabulary init and added with `library.add`.
`taskless_demo_majority` is the related source (the same decision on shorter
inputs); first, last, count and has_cat are unrelated (has_cat reads the same words
but answers yes/no).

1. Similarity ranking (SPoT's task embeddings): the target prompt after --probe_steps
   from U[-0.5, 0.5] (a seed no source used, so no shared init inflates a score)
   against each source, by average-token cosine and per-token cosine.
2. Zero-shot ranking: each source prompt on the target's validation split, the
   library evaluated as one bank in one pass.
3. Steps to 90%: the target tuned from class-label init, from U[-0.5, 0.5], and
   from each library entry (`library.from_library`); evaluated every --eval_period
   steps on --eval_examples held-out validation inputs; the first step at >= 90%.
Prints the tables and, last, one JSON line (also written to --json_out).
"""
import argparse
import os
import sys
import tempfile
import time

import output

LENGTHS = {"inputs": 16, "targets": 8}
TARGET = "taskless_demo_majority_long"
RELATED = "taskless_demo_majority"
SOURCES = ("taskless_demo_majority", "taskless_demo_has_cat", "taskless_demo_first",
           "taskless_demo_last", "taskless_demo_count")
THRESHOLD = 90.0


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--source_steps", type=int, default=100)
  p.add_argument("--target_steps", type=int, default=100)
  p.add_argument("--probe_steps", type=int, default=10)
  p.add_argument("--eval_period", type=int, default=10)
  return output.parse_demo_flags(p, argv)


def steps_to(history: list, key: str, threshold: float = THRESHOLD):
  """The first evaluated step with `key` >= threshold, or None."""
  return next((r["step"] for r in sorted(history, key=lambda r: r["step"])
               if r["kind"] == "eval" and r.get(key, -1) >= threshold), None)


def run(args) -> dict:
  # pylint: disable=import-outside-toplevel
  from prompt_tuning import paths
  from prompt_tuning.demo import tasks as demo_tasks
  from prompt_tuning.library import store
  from prompt_tuning.prompts import initializers
  from prompt_tuning.train import loop, optim
  from prompt_tuning.transfer import ranking

  model = paths.demo_model_dir()
  vocab = demo_tasks.demo_vocabulary()
  work = args.work_dir or tempfile.mkdtemp(prefix="spot_")
  library = os.path.join(work, "library")
  key = f"{TARGET}/accuracy"
  start = time.time()

  def train(name, task, init, steps, seed, eval_period):
    return loop.train(
        model_dir=os.path.join(work, name), mixture_or_task_name=task,
        task_feature_lengths=LENGTHS, train_steps=steps, batch_size=args.batch,
        initial_checkpoint_path=model, prompt_length=args.prompt_length, prompt_init=init,
        optimizer=optim.paper_adafactor(0.3), random_seed=seed, eval_period=eval_period,
        eval_num_examples=args.eval_examples, progress=False, log_period=eval_period,
        register_tasks=lambda: demo_tasks.register_demo_tasks(vocab))

  sources = {}
  for i, task in enumerate(SOURCES):
    result = train(f"source_{task}", task, initializers.sampled_vocab(128),
                   args.source_steps, seed=i, eval_period=args.source_steps // 2)
    store.add(library, result.model_dir, overwrite=True)
    sources[task] = result.best["value"]

  probe = train("target_probe", TARGET, initializers.random_uniform(0.5), args.probe_steps,
                seed=100, eval_period=args.probe_steps)
  target_prompt, _ = ranking.read_target(probe.model_dir, "latest")
  by_similarity = ranking.by_similarity(library, target_prompt, model)
  by_zero_shot = ranking.by_zero_shot(
      library, initial_checkpoint_path=model, mixture_or_task_name=TARGET,
      task_feature_lengths=LENGTHS, batch_size=args.batch, num_examples=args.eval_examples,
      output_dir=os.path.join(work, "zero_shot"),
      register_tasks=lambda: demo_tasks.register_demo_tasks(vocab))

  inits = {"class labels (animal, color)": initializers.class_labels(
               ["animal", "color"], vocab, initializers.sampled_vocab(128)),
           "random U[-0.5, 0.5]": initializers.random_uniform(0.5)}
  inits.update({f"SPoT from {task}": store.from_library(library, task, model)
                for task in SOURCES})
  rows = []
  for i, (label, init) in enumerate(inits.items()):
    result = train(f"target_{i}", TARGET, init, args.target_steps, seed=200,
                   eval_period=args.eval_period)
    evals = [r for r in result.history if r["kind"] == "eval"]
    rows.append({"init": label, "accuracy_at_0": evals[0][key],
                 "steps_to_90": steps_to(result.history, key),
                 "best": max(r[key] for r in evals)})
  return {"target": TARGET, "related_source": RELATED, "source_accuracy": sources,
          "similarity": by_similarity, "zero_shot": by_zero_shot, "steps_to_90": rows,
          "settings": {k: v for k, v in vars(args).items() if k not in ("json_out",
                                                                         "work_dir")},
          "seconds": round(time.time() - start, 1)}


def tables(result: dict) -> str:
  """The three Markdown tables: similarity, zero-shot, steps to 90%."""
  lines = ["| rank | source | average-token cosine | per-token cosine (rank) | zero-shot "
           "accuracy |", "|---|---|---|---|---|"]
  zero = {r["name"]: r["score"] for r in result["zero_shot"]}
  for i, r in enumerate(result["similarity"], 1):
    lines.append(f"| {i} | {r['name']} | {r['average']:.3f} | {r['per_token']:.3f} "
                 f"({r['rank_per_token']}) | {zero[r['name']]:.1f}% |")
  lines += ["", f"| {result['target']} init | accuracy at step 0 | steps to 90% | best |",
            "|---|---|---|---|"]
  cap = result["settings"]["target_steps"]
  for r in result["steps_to_90"]:
    steps = f"> {cap}" if r["steps_to_90"] is None else str(r["steps_to_90"])
    lines.append(f"| {r['init']} | {r['accuracy_at_0']:.1f}% | {steps} | {r['best']:.1f}% |")
  return "\n".join(lines)


def main(argv=None) -> int:
  return output.run_and_report(_flags(argv), run, tables)


if __name__ == "__main__":
  sys.exit(main())
