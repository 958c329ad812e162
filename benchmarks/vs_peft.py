"""Our prompt train step against Hugging Face PEFT prompt tuning, same model, same batch.

    python benchmarks/vs_peft.py                 # T5 1.1 small shape, CPU, ~4 min
    python benchmarks/vs_peft.py --rounds 5 --steps 10
    python benchmarks/vs_peft.py --size xl --batch 32 --inputs 512 --targets 16 \
        --dtype bfloat16 --remat minimal --scan      # one GPU

One T5 1.1 of the chosen size (random weights: the cost does not depend on
them), a [P, d_model] prompt in front of the encoder input, a batch of B
inputs of L tokens and T targets, dropout 0.1 (train mode on both sides):

  ours   prompt_tuning.train.step.jit_train_step: loss (z-loss included) and
         the prompt's gradient, Adafactor update; frozen weights passed in
  peft   transformers T5ForConditionalGeneration wrapped by
         peft.get_peft_model(PromptTuningConfig(num_virtual_tokens=P)):
         loss.backward() and a transformers Adafactor step on the prompt

Each side runs in its own process (`--side`), the two alternating for
`--rounds` rounds so that machine noise hits both; each process warms up
(compiles) and then times `--steps` steps. Reported per side: the median step
time over all rounds, peak RSS, and for each of three phases timed on their
own in the same process (encoder forward, loss forward, the whole step), so
a gap can be placed. For ours also XLA's flop count of the step, the achieved
FLOP/s and the model FLOPs utilisation against `--peak_tflops`.
Prints a table and, last, one JSON line (also written to --json_out).
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

PHASES = ("encoder_forward", "loss_forward", "train_step")
# Dense matmul peaks (TFLOP/s) from the vendors' data sheets, by (device kind, dtype).
PEAK_TFLOPS = {
    ("NVIDIA H100", "bfloat16"): 989.0, ("NVIDIA H100", "float32"): 67.0,
    ("NVIDIA H200", "bfloat16"): 989.0, ("NVIDIA H200", "float32"): 67.0,
    ("NVIDIA A100", "bfloat16"): 312.0, ("NVIDIA A100", "float32"): 19.5,
    ("TPU v4", "bfloat16"): 275.0, ("TPU v5 lite", "bfloat16"): 197.0,
    ("TPU v5p", "bfloat16"): 459.0,
    # The CI machine: 2 AMD Zen 5 cores x 64 fp32 flops/cycle (two 512-bit FMA pipes)
    # x 2.6 GHz. Another CPU needs its own --peak_tflops.
    ("cpu", "float32"): 0.333,
}


def peak_tflops(flag: str, device_kind: str, dtype: str) -> float:
  """--peak_tflops, or the table's entry whose kind starts `device_kind` (0: unknown)."""
  if flag != "auto":
    return float(flag)
  for (kind, kind_dtype), peak in PEAK_TFLOPS.items():
    if device_kind.startswith(kind) and kind_dtype == dtype:
      return peak
  return 0.0


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--side", choices=("ours", "peft"), default=None,
                 help="run one side in this process (the driver sets it)")
  p.add_argument("--size", default="small", help="T5 1.1 size: tiny, small, base, ...")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--inputs", type=int, default=128, help="input tokens L")
  p.add_argument("--targets", type=int, default=8, help="target tokens T")
  p.add_argument("--prompt_length", type=int, default=100)
  p.add_argument("--dtype", default="float32", help="activations and frozen weights")
  p.add_argument("--remat", default="none", help="ours: T5Config.remat_policy")
  p.add_argument("--scan", action="store_true", help="ours: T5Config.scan_layers")
  p.add_argument("--num_microbatches", type=int, default=None, help="ours only")
  p.add_argument("--sides", default="ours,peft", help="which sides to run")
  p.add_argument("--steps", type=int, default=5, help="timed steps per process")
  p.add_argument("--rounds", type=int, default=3, help="alternating processes per side")
  p.add_argument("--peak_tflops", default="auto",
                 help="the device's dense matmul peak in TFLOP/s for MFU; auto: from "
                      "PEAK_TFLOPS by device kind and dtype (CPU: 0.333, the 2-core CI machine, fp32)")
  p.add_argument("--json_out", default=None)
  return p.parse_args(argv)


def _tokens(args, vocab: int, seed: int = 0):
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  inputs = rng.integers(2, vocab, (args.batch, args.inputs)).astype(np.int32)
  targets = rng.integers(2, vocab, (args.batch, args.targets)).astype(np.int32)
  inputs[:, -1] = targets[:, -1] = 1  # EOS
  return inputs, targets


def _time(fn, steps: int) -> list:
  fn()  # warm-up: compile / allocate
  times = []
  for _ in range(steps):
    tick = time.perf_counter()
    fn()
    times.append(time.perf_counter() - tick)
  return times


def _peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_ours(args) -> dict:
  """Our side: the library's train step; phases as separately jitted functions."""
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import numpy as np
  from prompt_tuning import losses, tree
  from prompt_tuning.models import Transformer, get_config
  from prompt_tuning.prompts import spec as spec_lib
  from prompt_tuning.prompts.spec import PROMPT_PATH
  from prompt_tuning.train import optim, step as step_lib
  from prompt_tuning.train.state import TrainState
  # pylint: enable=import-outside-toplevel
  config = get_config(args.size, dropout_rate=0.1, dtype=args.dtype,
                      remat_policy=args.remat, scan_layers=args.scan)
  model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(args.prompt_length))
  trainable, frozen = tree.split(_random_params(model, args.dtype), PROMPT_PATH)
  inputs, targets = _tokens(args, config.vocab_size)
  batch = {"encoder_input_tokens": jnp.asarray(inputs),
           "decoder_input_tokens": jnp.asarray(np.pad(targets[:, :-1], ((0, 0), (1, 0)))),
           "decoder_target_tokens": jnp.asarray(targets),
           "decoder_loss_weights": jnp.ones(targets.shape, jnp.float32)}
  tx = optim.paper_adafactor()
  loss_cfg = losses.LossConfig()
  state = TrainState.create(trainable, tx, jax.random.PRNGKey(1))
  step = step_lib.jit_train_step(model, tx, loss_cfg, args.num_microbatches)
  rng = jax.random.PRNGKey(2)

  @jax.jit
  def encoder_forward(trainable, frozen, tokens):
    return model.apply({"params": tree.merge(trainable, frozen)}, tokens, enable_dropout=True,
                       rngs={"dropout": rng}, method="encode")[0]

  @jax.jit
  def loss_forward(trainable, frozen, batch):
    return losses.loss_fn(trainable, frozen, batch, rng, model=model, loss_cfg=loss_cfg)[0]

  compiled = step.lower(state, frozen, batch).compile()
  cost = compiled.cost_analysis()
  flops = float((cost[0] if isinstance(cost, list) else cost)["flops"])
  holder = {"state": state}

  def train_step():
    holder["state"], metrics = compiled(holder["state"], frozen, batch)
    jax.block_until_ready(metrics["loss"])

  times = {
      "encoder_forward": _time(lambda: jax.block_until_ready(
          encoder_forward(trainable, frozen, batch["encoder_input_tokens"])), args.steps),
      "loss_forward": _time(lambda: jax.block_until_ready(
          loss_forward(trainable, frozen, batch)), args.steps),
      "train_step": _time(train_step, args.steps)}
  stats = jax.devices()[0].memory_stats() or {}
  return {"side": "ours", "times_s": times, "flops": flops, "peak_rss_gib": _peak_rss_gib(),
          "peak_device_gib": stats.get("peak_bytes_in_use", 0) / 2**30,
          "xla_plan_gib": _plan_gib(compiled),
          "device": jax.devices()[0].device_kind, "jax": jax.__version__}


def _plan_gib(compiled) -> float:
  """XLA's per-device memory plan of a compiled step: arguments + outputs + temporaries."""
  m = compiled.memory_analysis()
  return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
          - m.alias_size_in_bytes) / 2**30


def _random_params(model, dtype: str):
  """Random params made on the device: the prompt float32, the frozen weights in `dtype`.

  Nothing is made in float32 first, so an 11B model in bfloat16 needs 22 GB,
  not 66. The values (normal, std 0.05) do not change the cost.
  """
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  from prompt_tuning import tree
  from prompt_tuning.models import init_params
  from prompt_tuning.prompts.spec import PROMPT_PATHS
  # pylint: enable=import-outside-toplevel
  abstract = tree.flatten(jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0))))

  @jax.jit
  def make(key):
    out = {}
    for i, (path, leaf) in enumerate(sorted(abstract.items())):
      leaf_dtype = jnp.float32 if path in PROMPT_PATHS else jnp.dtype(dtype)
      out[path] = 0.05 * jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf_dtype)
    return out

  return tree.unflatten(make(jax.random.PRNGKey(0)))


def run_peft(args) -> dict:
  """PEFT's side: PromptTuningConfig on transformers' T5, eager PyTorch."""
  # pylint: disable=import-outside-toplevel
  import peft
  import torch
  import transformers
  from prompt_tuning.checkpoints import hf
  from prompt_tuning.models import get_config
  # pylint: enable=import-outside-toplevel
  config = get_config(args.size, dropout_rate=0.1)
  hf_config = transformers.T5Config(**hf.config_to_hf(config))
  torch.manual_seed(0)
  dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
  base = transformers.T5ForConditionalGeneration(hf_config).to(dtype)
  device = "cuda" if torch.cuda.is_available() else "cpu"
  model = peft.get_peft_model(base, peft.PromptTuningConfig(
      task_type=peft.TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=args.prompt_length)).to(device)
  model.train()
  inputs, targets = _tokens(args, config.vocab_size)
  input_ids = torch.tensor(inputs, dtype=torch.long, device=device)
  labels = torch.tensor(targets, dtype=torch.long, device=device)
  mask = torch.ones_like(input_ids)
  opt = transformers.optimization.Adafactor(
      [p for p in model.parameters() if p.requires_grad], lr=0.3, scale_parameter=False,
      relative_step=False, warmup_init=False, clip_threshold=1.0, decay_rate=-0.8,
      weight_decay=1e-5)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  embeddings = model.get_input_embeddings()
  prompt = model.get_prompt(batch_size=args.batch)

  def encoder_forward():
    with torch.no_grad():
      embedded = torch.cat([prompt.to(dtype), embeddings(input_ids)], dim=1)
      full_mask = torch.cat([torch.ones(args.batch, args.prompt_length, dtype=mask.dtype,
                                        device=device), mask], dim=1)
      base.encoder(inputs_embeds=embedded, attention_mask=full_mask)
    sync()

  def loss_forward():
    with torch.no_grad():
      model(input_ids=input_ids, attention_mask=mask, labels=labels)
    sync()

  def train_step():
    loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync()

  times = {"encoder_forward": _time(encoder_forward, args.steps),
           "loss_forward": _time(loss_forward, args.steps),
           "train_step": _time(train_step, args.steps)}
  peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
  return {"side": "peft", "times_s": times, "peak_rss_gib": _peak_rss_gib(),
          "peak_device_gib": peak,
          "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
          "peft": peft.__version__}


def _child(args, side: str) -> dict:
  argv = [sys.executable, os.path.abspath(__file__), f"--side={side}"]
  for key, value in vars(args).items():
    if key == "scan":
      argv += ["--scan"] if value else []
    elif key not in ("side", "json_out", "rounds", "sides") and value is not None:
      argv.append(f"--{key}={value}")
  out = subprocess.run(argv, check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def drive(args) -> dict:
  """Alternates the two sides' processes and pools their timings."""
  sides = args.sides.split(",")
  runs = {side: [] for side in sides}
  for _ in range(args.rounds):
    for side in sides:
      runs[side].append(_child(args, side))
  return summarize(args, runs)


def summarize(args, runs: dict) -> dict:
  sides = {}
  for side, results in runs.items():
    pooled = {ph: [t for r in results for t in r["times_s"][ph]] for ph in PHASES}
    sides[side] = {"median_s": {ph: statistics.median(v) for ph, v in pooled.items()},
                   "times_s": pooled,
                   "peak_rss_gib": max(r["peak_rss_gib"] for r in results),
                   "peak_device_gib": max(r["peak_device_gib"] for r in results),
                   "info": {k: v for k, v in results[0].items()
                            if k not in ("times_s", "peak_rss_gib", "side")}}
  ratio = ({ph: sides["ours"]["median_s"][ph] / sides["peft"]["median_s"][ph]
            for ph in PHASES} if len(sides) == 2 else {})
  flops = sides["ours"]["info"]["flops"]
  achieved = flops / sides["ours"]["median_s"]["train_step"]
  peak = peak_tflops(args.peak_tflops, sides["ours"]["info"]["device"], args.dtype)
  return {"args": {k: v for k, v in vars(args).items() if k != "side"}, "sides": sides,
          "ratio_ours_over_peft": ratio, "step_gflop": flops / 1e9,
          "achieved_gflops": achieved / 1e9,
          "peak_tflops": peak, "mfu": achieved / (peak * 1e12) if peak else None,
          "expected": {"ratio_ours_over_peft.train_step": "<= 1.0"}}


def table(result: dict) -> str:
  """Median seconds per phase for each side run, their ratio, and memory."""
  sides = list(result["sides"])
  names = {"ours": "ours", "peft": "PEFT"}
  head = " | ".join(f"{names[s]} (median s)" for s in sides)
  both = len(sides) == 2
  lines = [f"| phase | {head} |" + (" ours / PEFT |" if both else ""),
           "|---" * (1 + len(sides) + both) + "|"]
  for ph in PHASES:
    cells = " | ".join(f"{result['sides'][s]['median_s'][ph]:.3f}" for s in sides)
    ratio = f" **{result['ratio_ours_over_peft'][ph]:.2f}x** |" if both else ""
    lines.append(f"| {ph.replace('_', ' ')} | {cells} |{ratio}")
  for key, label in (("peak_rss_gib", "peak RSS"), ("peak_device_gib", "peak device memory")):
    if any(result["sides"][s][key] for s in sides):
      cells = " | ".join(f"{result['sides'][s][key]:.2f} GiB" for s in sides)
      lines.append(f"| {label} | {cells} |" + (" |" if both else ""))
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _flags(argv)
  if args.side:
    print(json.dumps((run_ours if args.side == "ours" else run_peft)(args)))
    return 0
  result = drive(args)
  a = result["args"]
  devices = ", ".join(f"{s} on {v['info']['device']}" for s, v in result["sides"].items())
  print(f"T5 1.1 {a['size']} (random weights), batch {a['batch']}, {a['inputs']} input + "
        f"{a['prompt_length']} prompt tokens, {a['targets']} targets, {a['dtype']}, dropout "
        f"0.1, remat {a['remat']}, scan {a['scan']}, microbatches {a['num_microbatches']}; "
        f"{a['rounds']} alternating processes per side x {a['steps']} steps; {devices}")
  print(table(result))
  ours = result["sides"]["ours"]["info"]
  mfu = (f"MFU {100 * result['mfu']:.1f}% of {result['peak_tflops'] * 1e3:.0f} GFLOP/s"
         if result["mfu"] is not None else "MFU unknown (pass --peak_tflops)")
  print(f"our step: {result['step_gflop']:.0f} GFLOP (XLA cost analysis), "
        f"{result['achieved_gflops']:.0f} GFLOP/s achieved, {mfu}; XLA's memory plan "
        f"{ours['xla_plan_gib']:.2f} GiB per device")
  write_result(result, args.json_out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
