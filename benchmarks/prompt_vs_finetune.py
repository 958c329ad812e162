"""Prompt tuning vs full fine-tuning: step time and peak memory, same model and batch.

    python benchmarks/prompt_vs_finetune.py                  # T5 1.1 base, CPU, ~5 min
    python benchmarks/prompt_vs_finetune.py --frozen_dtype=bfloat16
    python benchmarks/prompt_vs_finetune.py --size large --batch 32 --inputs 512   # GPU

Both modes run the project's own `train_step` (prompt_tuning.train.step) on the
same randomly initialised T5 1.1 and the same batch of token ids:

  prompt     PROMPT_LENGTH soft prompt in front of the input, only it trained
             (TRAINABLE_REGEX default), `paper_adafactor()` (lr 0.3, unfactored)
  finetune   no prompt, every weight trained (TRAINABLE_REGEX ".*"), Adafactor
             as T5X fine-tunes (factored second moments, parameter scaling), or
             AdamW with --finetune_optimizer=adamw

Each mode runs in its own process. Peak memory is XLA's plan for one compiled
step (arguments + outputs + temporaries - donated buffers, from
`compiled.memory_analysis()`): exact and device independent. The process's peak
RSS is printed too (it also counts the Python process and the host
copy of the initial weights). Step time is the median of `--steps` timed steps
after two warm-up steps, and the fastest (other load on a shared machine only
ever adds time). Prompt tuning does more forward work (the encoder sees
L + P positions) but no weight gradients; the ratios say what that nets.

Prints a table and, last, one JSON line (also written to --json_out if given).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from output import write_result

MODES = ("prompt", "finetune")


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--size", default="base", help="T5 1.1 size: tiny, small, base, ...")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--inputs", type=int, default=512, help="encoder input length L")
  p.add_argument("--targets", type=int, default=8, help="decoder length T")
  p.add_argument("--prompt_length", type=int, default=100)
  p.add_argument("--steps", type=int, default=5, help="timed steps per mode")
  p.add_argument("--dtype", default="float32", help="activation dtype")
  p.add_argument("--frozen_dtype", default="float32",
                 help="FROZEN_PARAMS_DTYPE of the prompt run (float32 or bfloat16)")
  p.add_argument("--finetune_optimizer", choices=("adafactor", "adamw"), default="adafactor",
                 help="full fine-tuning's optimizer: T5X's factored Adafactor, or AdamW "
                      "(two float32 moments per weight, PEFT's usual baseline)")
  p.add_argument("--json_out", default=None)
  p.add_argument("--mode", choices=MODES, default=None, help=argparse.SUPPRESS)
  return p.parse_args(argv)


def _run_mode(args) -> dict:
  """Compiles and times one mode in this process; returns its measurements."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  # pylint: disable=import-outside-toplevel
  from prompt_tuning import losses, tree
  from prompt_tuning.checkpoints import frozen as frozen_lib
  from prompt_tuning.models import Transformer, get_config, init_params
  from prompt_tuning.prompts import spec as spec_lib
  from prompt_tuning.train import optim, step as step_lib, trainable as trainable_lib
  from prompt_tuning.train.state import TrainState
  # pylint: enable=import-outside-toplevel

  prompt = args.mode == "prompt"
  config = get_config(args.size, dtype=args.dtype, dropout_rate=0.1)
  model = Transformer(config, encoder_prompt=(spec_lib.encoder_prompt(args.prompt_length)
                                              if prompt else None))
  params = init_params(model, jax.random.PRNGKey(0))
  trainable, frozen = (trainable_lib.split(params) if prompt else tree.split(params, ".*"))
  if prompt:
    frozen = frozen_lib.cast_frozen(frozen, args.frozen_dtype)
    tx = optim.paper_adafactor()
  elif args.finetune_optimizer == "adamw":
    tx = optax.adamw(1e-4)
  else:  # T5X fine-tuning: factored Adafactor with parameter scaling, lr 1e-3
    tx = optim.paper_adafactor(learning_rate=1e-3, factored=True,
                               multiply_by_parameter_scale=True, weight_decay_rate=None)
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(1))

  rng = np.random.default_rng(0)
  b, length, t, v = args.batch, args.inputs, args.targets, config.vocab_size
  targets = rng.integers(2, v, (b, t)).astype(np.int32)
  batch = {"encoder_input_tokens": rng.integers(2, v, (b, length)).astype(np.int32),
           "decoder_target_tokens": targets,
           "decoder_input_tokens": np.pad(targets[:, :-1], [(0, 0), (1, 0)]),
           "decoder_loss_weights": np.ones((b, t), np.int32)}

  train_step = step_lib.jit_train_step(model, tx, losses.LossConfig())
  tick = time.perf_counter()
  compiled = train_step.lower(state, frozen, batch).compile()
  compile_s = time.perf_counter() - tick
  mem = compiled.memory_analysis()
  peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
          - mem.alias_size_in_bytes)

  times = []
  for i in range(args.steps + 2):
    tick = time.perf_counter()
    state, metrics = compiled(state, frozen, batch)
    jax.block_until_ready((state, metrics))
    if i >= 2:
      times.append(time.perf_counter() - tick)
  count = lambda tree: int(sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)))
  return {"mode": args.mode, "size": args.size, "device": str(jax.devices()[0]),
          "batch": b, "inputs": length, "targets": t,
          "prompt_length": args.prompt_length if prompt else 0,
          "trainable_params": count(state.trainable),
          "optimizer_state_values": count(state.opt_state),
          "frozen_params": count(frozen),
          "step_time_s": statistics.median(times), "step_time_min_s": min(times),
          "step_times_s": times,
          "compile_s": compile_s, "peak_bytes_xla": int(peak),
          "temp_bytes_xla": int(mem.temp_size_in_bytes),
          "argument_bytes_xla": int(mem.argument_size_in_bytes),
          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
          "loss": float(metrics["loss"])}


def _table(rows: dict, ratios: dict) -> str:
  mib = lambda x: f"{x / 2**20:,.0f} MiB"
  lines = ["| | prompt tuning | full fine-tuning | prompt / full |", "|---|---|---|---|"]
  spec = [("trainable params", "trainable_params", lambda x: f"{x:,}", None),
          ("optimizer state values", "optimizer_state_values", lambda x: f"{x:,}", None),
          ("step time (median)", "step_time_s", lambda x: f"{x:.3f} s", "time"),
          ("step time (fastest)", "step_time_min_s", lambda x: f"{x:.3f} s", "time_min"),
          ("peak step memory (XLA)", "peak_bytes_xla", mib, "memory_xla"),
          ("  of which temporaries", "temp_bytes_xla", mib, None),
          ("peak process RSS", "peak_rss_bytes", mib, "memory_rss")]
  for label, key, fmt, ratio in spec:
    r = f"{ratios[ratio]:.2f}x" if ratio else ""
    lines.append(f"| {label} | {fmt(rows['prompt'][key])} | {fmt(rows['finetune'][key])} "
                 f"| {r} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _flags(argv)
  if args.mode:
    print(json.dumps(_run_mode(args)))
    return 0
  rows = {}
  for mode in MODES:
    cmd = [sys.executable, os.path.abspath(__file__), f"--mode={mode}"] + [
        f"--{k}={v}" for k, v in vars(args).items() if k not in ("mode", "json_out")]
    print(f"running {mode} ...", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows[mode] = json.loads(out.strip().splitlines()[-1])
  p, f = rows["prompt"], rows["finetune"]
  ratios = {"time": p["step_time_s"] / f["step_time_s"],
            "time_min": p["step_time_min_s"] / f["step_time_min_s"],
            "memory_xla": p["peak_bytes_xla"] / f["peak_bytes_xla"],
            "memory_rss": p["peak_rss_bytes"] / f["peak_rss_bytes"]}
  print(f"T5 1.1 {args.size}, batch {args.batch}, inputs {args.inputs} (+{args.prompt_length}"
        f" prompt), targets {args.targets}, {args.dtype} activations, {args.frozen_dtype} "
        f"frozen weights (prompt run), fine-tuning with {args.finetune_optimizer}, on "
        f"{p['device']}")
  print(_table(rows, ratios))
  result = {"args": {k: v for k, v in vars(args).items() if k != "mode"},
            "prompt": p, "finetune": f, "ratios": ratios,
            "expected": {"time": "<= 0.75", "memory": "<= 0.6"}}
  write_result(result, args.json_out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
