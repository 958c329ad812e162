"""The comparison's outputs: a Markdown table, the same rows as JSON, and a PNG.

The plot is score against trainable parameters (log x), one point per method;
methods that train nothing (prompt design) sit at the left edge, marked "0".
"""
import math
import os
from typing import Optional, Sequence

from prompt_tuning.eval.prompt_eval import write_json

COLUMNS = ("label", "method", "score", "trainable_params", "inference_params", "trainable_pct",
           "bytes_per_task", "step_time_s", "peak_memory_gib", "steps_to_best",
           "wall_s_to_best")


def with_percent(row: dict) -> dict:
  """`row` plus trainable_pct, trainable params as a percentage of the pretrained model."""
  total = row.get("model_params")
  pct = 100.0 * row["trainable_params"] / total if total else None
  return {**row, "trainable_pct": pct}


def _size(n: Optional[float]) -> str:
  if n is None:
    return "-"
  for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
    if n >= scale:
      return f"{n / scale:.1f} {unit}"
  return f"{int(n)} B"


def _num(value, fmt: str, unit: str = "") -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  return format(value, fmt) + unit


def _params(row: dict) -> str:
  served = row.get("inference_params")
  text = f"{row['trainable_params']:,}"
  return text if served in (None, row["trainable_params"]) else f"{text} ({served:,} served)"


def markdown(rows: Sequence[dict], metric: str) -> str:
  """The table, one row per method, in the order they ran."""
  lines = [f"| method | {metric} (best checkpoint) | trainable params | % of model | "
           "bytes per task | train step | peak memory | steps to best | wall time to best |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if "error" in r:
      lines.append(f"| {r['label']} | failed: {r['error'][:100]} | | | | | | | |")
      continue
    name = r["label"] if r["label"] == r["method"] else f"{r['label']} ({r['method']})"
    lines.append(
        f"| {name} | {_num(r['score'], '.2f')} | {_params(r)} | "
        f"{_num(r['trainable_pct'], '.3g', '%')} | {_size(r['bytes_per_task'])} | "
        f"{_num(r['step_time_s'] and 1e3 * r['step_time_s'], '.0f', ' ms')} | "
        f"{_num(r['peak_memory_gib'], '.2f', ' GiB')} | {r['steps_to_best']} | "
        f"{_num(r['wall_s_to_best'], '.0f', ' s')} |")
  return "\n".join(lines)


def plot(rows: Sequence[dict], metric: str, out_path: str) -> str:
  """Score against trainable parameters (log x), one labelled point per method."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  done = [r for r in rows if "error" not in r]
  trained = [r["trainable_params"] for r in done if r["trainable_params"]]
  floor = 10 ** math.floor(math.log10(min(trained))) / 10 if trained else 1.0
  fig, ax = plt.subplots(figsize=(9, 4.5))
  markers = "os^vD<>ph*"
  for i, r in enumerate(done):
    trained = bool(r["trainable_params"])
    ax.scatter([r["trainable_params"] if trained else floor], [r["score"]], s=50,
               marker=markers[i % len(markers)] if trained else "x",
               label=r["label"] + ("" if trained else " (0 params, at the left edge)"))
  ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
  ax.set(xscale="log", xlabel="trainable parameters (log scale)", ylabel=metric,
         title="score against trainable parameters, one frozen model")
  ax.grid(True, which="both", alpha=0.3)
  ax.margins(x=0.1, y=0.1)
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
  return out_path


def write(rows: Sequence[dict], metric: str, output_dir: str, info: dict) -> dict:
  """Writes compare.md, compare.json and compare.png to `output_dir`; returns their paths."""
  os.makedirs(output_dir, exist_ok=True)
  paths = {k: os.path.join(output_dir, f"compare.{k}") for k in ("md", "json", "png")}
  tmp = paths["md"] + ".tmp"
  with open(tmp, "w") as f:
    f.write(markdown(rows, metric) + "\n")
  os.replace(tmp, paths["md"])
  write_json(paths["json"], {**info, "metric": metric, "rows": list(rows)})
  plot(rows, metric, paths["png"])
  return paths
