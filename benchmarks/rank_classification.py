"""Fast rank classification: examples/s of `score_options` against one full forward per option.

    python benchmarks/rank_classification.py      # T5 1.1 small shapes, CPU, ~2 min
    python benchmarks/rank_classification.py --size base --batch 64 --inputs 512   # GPU

Three ways to score C candidate targets per example, same random T5 1.1 and batch:

  per_option  one full forward (`scoring.score`, jitted) per option: the encoder
              and every cross-attention key/value projection run C times
  repeated    the encoder once, its [B, S, D] encodings repeated to [B * C, S, D]
              (score_options before the fast path): each decoder layer still
              projects the cross-attention keys/values C times
  shared      `scoring.score_options`: the encoder and the cross-attention
              keys/values once per example, shared by its C option rows

Examples/s is B over the median time of scoring one batch's C options (the
methods run interleaved, so other load on a shared machine hits all of them
alike). XLA's flop count of each compiled method is exact and device
independent. Every method's scores are checked against per_option's.

Prints a table and, last, one JSON line (also written to --json_out if given).
"""
import argparse
import statistics
import sys
import time

from output import write_result

METHODS = ("per_option", "repeated", "shared")


def _flags(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--size", default="small", help="T5 1.1 size: tiny, small, base, ...")
  p.add_argument("--batch", type=int, default=8, help="examples B")
  p.add_argument("--inputs", type=int, default=256, help="encoder input length L")
  p.add_argument("--targets", type=int, default=4, help="option length T (label tokens + EOS)")
  p.add_argument("--options", default="2,3,8", help="comma-separated numbers of options C")
  p.add_argument("--repeats", type=int, default=5, help="timed batches per method and C")
  p.add_argument("--json_out", default=None)
  return p.parse_args(argv)


def _data(args, vocab_size: int, num_options: int):
  """[B, L] inputs (the second half of the batch padded to L / 2) and [B, C, T] options."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(num_options)
  tokens = rng.integers(2, vocab_size, (args.batch, args.inputs)).astype(np.int32)
  tokens[args.batch // 2:, args.inputs // 2:] = 0
  options = rng.integers(2, vocab_size, (args.batch, num_options, args.targets)).astype(np.int32)
  options[..., -1] = 1  # EOS
  options[:, 0, args.targets // 2:] = 0  # a shorter first option
  options[:, 0, args.targets // 2 - 1] = 1
  return tokens, options


def run(args) -> dict:
  """Compiles and times the three methods for each C; returns the measurements."""
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np
  from prompt_tuning.models import Transformer, get_config, init_params, scoring
  from prompt_tuning.testing.naive import repeated_encodings_scores
  # pylint: enable=import-outside-toplevel
  config = get_config(args.size, dropout_rate=0.0)
  model = Transformer(config)
  params = init_params(model, jax.random.PRNGKey(0))
  flops = lambda compiled: float((lambda c: c[0] if isinstance(c, list) else c)(
      compiled.cost_analysis())["flops"])
  rows = []
  for num_options in [int(c) for c in args.options.split(",")]:
    tokens, options = _data(args, config.vocab_size, num_options)
    batches = [{"encoder_input_tokens": tokens,
                "decoder_input_tokens": np.pad(options[:, c, :-1], ((0, 0), (1, 0))),
                "decoder_target_tokens": options[:, c]} for c in range(num_options)]
    tick = time.perf_counter()
    score = jax.jit(scoring.score, static_argnums=0).lower(model, params, batches[0]).compile()
    repeated = jax.jit(repeated_encodings_scores, static_argnums=0).lower(
        model, params, tokens, options).compile()
    shared = jax.jit(scoring.score_options, static_argnums=0).lower(
        model, params, tokens, options).compile()
    compile_s = time.perf_counter() - tick
    calls = {"per_option": lambda: jax.numpy.stack([score(params, b) for b in batches], 1),
             "repeated": lambda: repeated(params, tokens, options),
             "shared": lambda: shared(params, tokens, options)}
    results = {m: np.asarray(jax.block_until_ready(f())) for m, f in calls.items()}  # warm-up
    times = {m: [] for m in METHODS}
    for _ in range(args.repeats):
      for m in METHODS:
        tick = time.perf_counter()
        jax.block_until_ready(calls[m]())
        times[m].append(time.perf_counter() - tick)
    reference = results["per_option"]
    row = {"options": num_options, "compile_s": compile_s,
           "flops": {"per_option": num_options * flops(score), "repeated": flops(repeated),
                     "shared": flops(shared)},
           "max_rel_diff_vs_per_option": {
               m: float(np.max(np.abs(results[m] - reference) / np.abs(reference)))
               for m in METHODS}}
    for m in METHODS:
      row[m] = {"median_s": statistics.median(times[m]), "min_s": min(times[m]),
                "times_s": times[m],
                "examples_per_s": args.batch / statistics.median(times[m])}
    row["speedup_vs_per_option"] = row["shared"]["examples_per_s"] / row["per_option"][
        "examples_per_s"]
    row["speedup_vs_repeated"] = row["shared"]["examples_per_s"] / row["repeated"][
        "examples_per_s"]
    rows.append(row)
  return {"args": vars(args), "device": str(jax.devices()[0]), "rows": rows,
          "expected": {"speedup_vs_per_option_at_C>=3": ">= 2"}}


def table(result: dict) -> str:
  """The README's table: examples/s per method, speedups and flops ratios per C."""
  lines = ["| C | per option (C full forwards) | repeated encodings | shared K/V "
           "(`score_options`) | shared / per option | shared / repeated | flops, shared / "
           "per option | shared vs per option, max rel. diff |",
           "|---|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    eps = {m: f"{r[m]['examples_per_s']:.1f}/s" for m in METHODS}
    f = r["flops"]
    lines.append(f"| {r['options']} | {eps['per_option']} | {eps['repeated']} | "
                 f"{eps['shared']} | **{r['speedup_vs_per_option']:.2f}x** | "
                 f"{r['speedup_vs_repeated']:.2f}x | {f['shared'] / f['per_option']:.2f} | "
                 f"{r['max_rel_diff_vs_per_option']['shared']:.1e} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _flags(argv)
  result = run(args)
  print(f"T5 1.1 {args.size} (random weights), batch {args.batch}, inputs {args.inputs}, "
        f"options of {args.targets} tokens, float32, on {result['device']}; examples/s = "
        f"batch / median of {args.repeats} batches")
  print(table(result))
  write_result(result, args.json_out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
