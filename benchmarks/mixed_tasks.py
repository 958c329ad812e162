"""Mixed-task batches: inputs of N tasks served together through one prompt bank.

    python benchmarks/mixed_tasks.py          # T5 1.1 small shapes, CPU, ~2 min
    python benchmarks/mixed_tasks.py --size base --per_task 64 --batch 64    # GPU

One frozen T5 1.1 (random weights; the cost does not depend on them), N tasks
with `--per_task` inputs each and one prompt each, greedy decoding:

  mixed        a bank of the N prompts; every batch mixes the tasks' inputs, each
               row with its own prompt id: one compiled forward for everything
  one_by_one   each task on its own: its prompt, its inputs in batches of B, the
               last batch of each task padded (the same compiled function for all
               tasks, since a prompt's shape does not change)

Inputs/s is all N * per_task inputs over the wall time of serving them (compiled
beforehand, median of --repeats); both produce the same predictions (checked).
Prints a table and, last, one JSON line (also written to --json_out if given).
"""
import argparse
import json
import statistics
import sys
import time


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--size", default="small", help="T5 1.1 size: tiny, small, base, ...")
  p.add_argument("--tasks", default="1,4,16", help="comma-separated numbers of tasks N")
  p.add_argument("--per_task", type=int, default=12, help="inputs per task")
  p.add_argument("--batch", type=int, default=32, help="rows per compiled call B")
  p.add_argument("--inputs", type=int, default=64, help="input length L")
  p.add_argument("--targets", type=int, default=4, help="decoded tokens T")
  p.add_argument("--prompt_length", type=int, default=20)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--json_out", default=None)
  return p.parse_args(argv)


def run(args) -> dict:
  """Times both ways for each N; returns the measurements."""
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np
  from prompt_tuning import tree
  from prompt_tuning.models import Transformer, decoding, get_config, init_params
  from prompt_tuning.prompts import spec as spec_lib
  # pylint: enable=import-outside-toplevel

  config = get_config(args.size, dropout_rate=0.0)
  frozen = init_params(config, jax.random.PRNGKey(0))
  rows = []
  for n in [int(x) for x in args.tasks.split(",")]:
    rng = np.random.default_rng(n)
    bank = rng.uniform(-0.5, 0.5, (n, args.prompt_length, config.emb_dim)).astype(np.float32)
    total = n * args.per_task
    tokens = rng.integers(2, config.vocab_size, (total, args.inputs)).astype(np.int32)
    tokens[:, -1] = 1
    task_of = np.arange(total) % n  # the tasks interleaved, as requests arrive
    mixed_model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(
        args.prompt_length, n))
    single_model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(
        args.prompt_length))
    mixed_params = tree.merge(frozen, {"encoder": {"prompt": {"prompt": bank if n > 1 else
                                                              bank[0]}}})
    decode_mixed = jax.jit(lambda p, t, i: decoding.greedy_decode(
        mixed_model, p, t, args.targets, prompt_ids=i if n > 1 else None))
    decode_single = jax.jit(lambda p, t: decoding.greedy_decode(single_model, p, t,
                                                                args.targets))

    def batches(idx):
      for start in range(0, len(idx), args.batch):
        part = idx[start:start + args.batch]
        yield part, np.pad(tokens[part], ((0, args.batch - len(part)), (0, 0)))

    def mixed():
      out = np.zeros((total, args.targets), np.int32)
      for part, batch in batches(np.arange(total)):
        ids = np.pad(task_of[part], (0, args.batch - len(part))).astype(np.int32)
        out[part] = np.asarray(decode_mixed(mixed_params, batch, ids))[:len(part)]
      return out

    def one_by_one():
      out = np.zeros((total, args.targets), np.int32)
      for task in range(n):
        params = tree.merge(frozen, {"encoder": {"prompt": {"prompt": bank[task]}}})
        for part, batch in batches(np.flatnonzero(task_of == task)):
          out[part] = np.asarray(decode_single(params, batch))[:len(part)]
      return out

    want, got = one_by_one(), mixed()  # compiles both
    same = bool(np.array_equal(want, got))
    times = {"mixed": [], "one_by_one": []}
    for _ in range(args.repeats):
      for name, fn in (("mixed", mixed), ("one_by_one", one_by_one)):
        tick = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - tick)
    row = {"tasks": n, "inputs": total,
           **{f"{k}_inputs_per_s": total / statistics.median(v) for k, v in times.items()},
           "calls_mixed": -(-total // args.batch),
           "calls_one_by_one": n * -(-args.per_task // args.batch), "same_predictions": same}
    row["speedup"] = row["mixed_inputs_per_s"] / row["one_by_one_inputs_per_s"]
    rows.append(row)
  return {"benchmark": "mixed_tasks", "size": args.size, "batch": args.batch,
          "per_task": args.per_task, "inputs": args.inputs, "targets": args.targets,
          "prompt_length": args.prompt_length, "device": str(jax.devices()[0]), "rows": rows}


def main(argv=None) -> int:
  args = _flags(argv)
  result = run(args)
  print(f"T5 1.1 {result['size']} shapes, {args.per_task} inputs per task, batch {args.batch}, "
        f"{args.inputs} input tokens, greedy {args.targets} tokens, {result['device']}")
  print("| tasks | inputs | mixed (inputs/s) | one task at a time (inputs/s) | speedup | "
        "compiled calls, mixed / one by one | same predictions |")
  print("|---|---|---|---|---|---|---|")
  for r in result["rows"]:
    print(f"| {r['tasks']} | {r['inputs']} | {r['mixed_inputs_per_s']:.1f} | "
          f"{r['one_by_one_inputs_per_s']:.1f} | {r['speedup']:.2f}x | "
          f"{r['calls_mixed']} / {r['calls_one_by_one']} | {r['same_predictions']} |")
  line = json.dumps(result)
  if args.json_out:
    with open(args.json_out, "w") as f:
      f.write(line + "\n")
  print(line)
  return 0


if __name__ == "__main__":
  sys.exit(main())
