"""The demo's curves: training loss and held-out accuracy over steps, as a PNG."""
from prompt_tuning.checkpoints import run_dir


def plot_curves(model_dir: str, out_path: str, task: str) -> str:
  """Train loss and `task`'s eval accuracy over steps, from MODEL_DIR/metrics.jsonl.

  Returns:
    `out_path`, the PNG written.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  records = run_dir.read_metrics(model_dir)
  train = [r for r in records if r["kind"] == "train"]
  evals = [r for r in records if r["kind"] == "eval"]
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
  ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], marker=".")
  ax_loss.set(xlabel="step", ylabel="train loss (sum over target tokens)",
              title="training loss", yscale="log")
  key = f"{task}/accuracy"
  ax_acc.plot([r["step"] for r in evals], [r[key] for r in evals], marker="o")
  ax_acc.axhline(50, color="gray", linestyle="--", label="chance (2 labels)")
  ax_acc.set(xlabel="step", ylabel="accuracy (%)", ylim=(-2, 102),
             title="held-out accuracy (validation)")
  ax_acc.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
  return out_path
