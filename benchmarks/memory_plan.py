"""XLA's per-device memory plan of the prompt train step at the paper's sizes, compiled only.

    python benchmarks/memory_plan.py                        # Large, XL, XXL; ~20 min on 2 cores
    python benchmarks/memory_plan.py --sizes xxl --meshes 1x1,2x8 --remats full

Nothing is allocated or run: the step is lowered on `jax.ShapeDtypeStruct`s and
compiled for fake host devices (`--xla_force_host_platform_device_count`),
and `compiled.memory_analysis()` gives what XLA plans to hold on each device:
arguments (the frozen weights' shard, the prompt, its optimizer state, the
batch's rows) + outputs + temporaries (activations) - donated buffers. The
setting is the paper's: T5 1.1 with a 100-token prompt, batch 32, 512 input
and 16 target tokens, bfloat16 frozen weights and activations, the paper's
Adafactor, dropout on. Each mesh is data x model (`prompt_tuning.sharding`,
T5X's rules: weights split over `model`, the batch over `data`); each remat
policy runs with scanned layers (XLA's CPU compiler honours remat only inside
a loop; its plan for unscanned remat is the no-remat plan), plus the
unscanned, no-remat step as it ran before these levers. A configuration
"fits" a device when the plan is at most its memory.
Prints a table and, last, one JSON line (also written to --json_out).
"""
import argparse
import json
import os
import sys
import time

from output import write_result

DEVICE_GB = (16, 40, 80)


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--sizes", default="large,xl,xxl", help="T5 1.1 sizes")
  p.add_argument("--meshes", default="1x1,8x1,1x8,2x8",
                 help="comma-separated data x model meshes (devices = data * model)")
  p.add_argument("--remats", default="none,minimal,full", help="remat policies (scanned)")
  p.add_argument("--unscanned_baseline", default=True, type=lambda s: s.lower() == "true",
                 help="also plan the unscanned, no-remat step on each mesh")
  p.add_argument("--microbatches", default="1", help="comma-separated NUM_MICROBATCHES")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--inputs", type=int, default=512)
  p.add_argument("--targets", type=int, default=16)
  p.add_argument("--prompt_length", type=int, default=100)
  p.add_argument("--dtype", default="bfloat16", help="frozen weights and activations")
  p.add_argument("--json_out", default=None)
  return p.parse_args(argv)


def _meshes(text: str) -> list:
  return [tuple(int(v) for v in m.split("x")) for m in text.split(",")]


def _fake_devices(args) -> None:
  """Asks XLA for enough host devices; must run before jax is imported."""
  need = max(d * m for d, m in _meshes(args.meshes))
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={need}".strip()


def plan(args, size: str, mesh: tuple, remat: str, scan_layers: bool,
         microbatches: int) -> dict:
  """Compiles one configuration's train step and returns XLA's per-device plan in GiB."""
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  from prompt_tuning import losses, sharding, tree
  from prompt_tuning.models import Transformer, get_config, init_params
  from prompt_tuning.prompts import spec as spec_lib
  from prompt_tuning.prompts.spec import PROMPT_PATH
  from prompt_tuning.train import optim, step as step_lib
  from prompt_tuning.train.state import TrainState
  # pylint: enable=import-outside-toplevel
  config = get_config(size, dropout_rate=0.1, dtype=args.dtype, remat_policy=remat,
                      scan_layers=scan_layers)
  model = Transformer(config, encoder_prompt=spec_lib.encoder_prompt(args.prompt_length))
  abstract = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))
  trainable, frozen = tree.split(abstract, PROMPT_PATH)
  frozen = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, jnp.dtype(args.dtype)), frozen)
  tx = optim.paper_adafactor()
  state = jax.eval_shape(lambda t: TrainState.create(t, tx, jax.random.PRNGKey(0)), trainable)
  b, length, targets = args.batch, args.inputs, args.targets
  batch = {"encoder_input_tokens": jax.ShapeDtypeStruct((b, length), jnp.int32),
           "decoder_input_tokens": jax.ShapeDtypeStruct((b, targets), jnp.int32),
           "decoder_target_tokens": jax.ShapeDtypeStruct((b, targets), jnp.int32),
           "decoder_loss_weights": jax.ShapeDtypeStruct((b, targets), jnp.float32)}
  data, model_ways = mesh
  part = sharding.Partitioning.create(mesh_shape=(data, model_ways),
                                      devices=jax.devices()[:data * model_ways])
  train_shardings = part.param_shardings(model, trainable)
  state_shardings = part.like_params(state, trainable, train_shardings)
  in_shardings = (state_shardings, part.param_shardings(model, frozen),
                  jax.tree.map(lambda _: part.batch_sharding, batch))
  step = step_lib.jit_train_step(model, tx, losses.LossConfig(),
                                 microbatches if microbatches > 1 else None,
                                 in_shardings=in_shardings,
                                 out_shardings=(state_shardings, part.replicated))
  tick = time.perf_counter()
  with part.scope():
    compiled = step.lower(state, frozen, batch).compile()
  m = compiled.memory_analysis()
  gib = lambda n: n / 2**30
  total = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
           - m.alias_size_in_bytes)
  return {"size": size, "mesh": f"{data}x{model_ways}", "devices": data * model_ways,
          "remat": remat, "scan_layers": scan_layers, "microbatches": microbatches,
          "arguments_gib": gib(m.argument_size_in_bytes), "temp_gib": gib(m.temp_size_in_bytes),
          "output_gib": gib(m.output_size_in_bytes), "alias_gib": gib(m.alias_size_in_bytes),
          "per_device_gib": gib(total), "compile_s": time.perf_counter() - tick,
          "fits_gb": [gb for gb in DEVICE_GB if total <= gb * 1e9]}


def configurations(args) -> list:
  """(size, mesh, remat, scan_layers, microbatches), the unscanned baseline first."""
  out = []
  for size in args.sizes.split(","):
    for mesh in _meshes(args.meshes):
      for micro in [int(m) for m in args.microbatches.split(",")]:
        if args.unscanned_baseline:
          out.append((size, mesh, "none", False, micro))
        out += [(size, mesh, r, True, micro) for r in args.remats.split(",")]
  return out


def run(args) -> dict:
  rows = []
  for size, mesh, remat, scan_layers, micro in configurations(args):
    try:
      rows.append(plan(args, size, mesh, remat, scan_layers, micro))
    except ValueError as e:  # e.g. a model axis the mesh does not divide
      rows.append({"size": size, "mesh": f"{mesh[0]}x{mesh[1]}", "remat": remat,
                   "scan_layers": scan_layers, "microbatches": micro, "error": str(e)})
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
  import jax  # pylint: disable=import-outside-toplevel
  return {"args": vars(args), "backend": jax.default_backend(), "rows": rows}


def table(result: dict) -> str:
  lines = ["| size | mesh (data x model) | layers | remat | microbatches | per device: "
           "weights+state+batch | activations (temp) | **total** | fits 16 / 40 / 80 GB |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    layers = "scanned" if r["scan_layers"] else "unrolled"
    if "error" in r:
      lines.append(f"| {r['size']} | {r['mesh']} | {layers} | {r['remat']} | "
                   f"{r['microbatches']} | error: {r['error'][:80]} | | | |")
      continue
    fits = " / ".join("yes" if gb in r["fits_gb"] else "no" for gb in DEVICE_GB)
    lines.append(f"| {r['size']} | {r['mesh']} | {layers} | {r['remat']} | "
                 f"{r['microbatches']} | {r['arguments_gib']:.1f} GiB | {r['temp_gib']:.1f} GiB"
                 f" | **{r['per_device_gib']:.1f} GiB** | {fits} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _flags(argv)
  _fake_devices(args)
  result = run(args)
  print(f"T5 1.1 prompt train step, batch {args.batch}, {args.inputs} + {args.prompt_length} "
        f"input tokens, {args.targets} targets, {args.dtype} frozen weights and activations; "
        f"XLA's per-device plan, compiled for {result['backend']} devices, nothing run")
  print(table(result))
  write_result(result, args.json_out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
