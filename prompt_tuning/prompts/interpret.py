"""Reads a learned prompt through the vocabulary: nearest tokens by cosine, and its norms.

Lester et al. (2021, section 7) interpret prompts by the nearest neighbours of
each prompt vector in the frozen embedding table, using cosine similarity, and
note that learned prompts end up far larger in norm than token embeddings
(google-research/prompt-tuning reports norms near 1600 against about 300 for
T5 1.1 XXL's embeddings). `interpret` gives both for every position of a
prompt; `format_table` and `plot_norms` present them.
"""
from typing import Any, Optional, Sequence

import numpy as np

PERCENTILES = (5, 50, 95)


def nearest_tokens(prompt: np.ndarray, embedding: np.ndarray,
                   k: int = 5) -> tuple[np.ndarray, np.ndarray]:
  """Finds the k vocabulary entries closest to each prompt position.

  Args:
    prompt: [P, D] learned prompt.
    embedding: [V, D] frozen token embedding table.
    k: neighbours per position (at most V).

  Returns:
    [P, k] token ids and their [P, k] cosine similarities, most similar first.
  """
  prompt, embedding = np.asarray(prompt, np.float32), np.asarray(embedding, np.float32)
  if prompt.ndim != 2 or embedding.ndim != 2 or prompt.shape[1] != embedding.shape[1]:
    raise ValueError(f"nearest_tokens: prompt {prompt.shape} and embedding "
                     f"{embedding.shape} must be [P, D] and [V, D] with the same D.")
  if not 1 <= k <= embedding.shape[0]:
    raise ValueError(f"nearest_tokens: k={k}; expected 1..{embedding.shape[0]}.")
  unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  sims = unit(prompt) @ unit(embedding).T  # [P, V]
  ids = np.argsort(-sims, axis=-1, kind="stable")[:, :k]
  return ids, np.take_along_axis(sims, ids, axis=-1)


def interpret(prompt: np.ndarray, embedding: np.ndarray, decode=None, k: int = 5,
              name: str = "prompt") -> dict:
  """Nearest tokens and norms of every position of a [P, D] prompt.

  Args:
    prompt: [P, D].
    embedding: [V, D] frozen token embedding table.
    decode: id -> token string (e.g. `lambda i: vocab.decode([i])`); None keeps ids only.
    k: neighbours per position.
    name: what the prompt is (its parameter path), for the report.

  Returns:
    A JSON-ready dict: {"name", "shape", "positions": [{"position", "norm",
    "nearest": [{"id", "token", "cosine"}]}], "embedding_norms": {"mean",
    "p5", "p50", "p95"}, "prompt_norms": {same}}.
  """
  ids, sims = nearest_tokens(prompt, embedding, k)
  norms = np.linalg.norm(np.asarray(prompt, np.float32), axis=-1)
  table_norms = np.linalg.norm(np.asarray(embedding, np.float32), axis=-1)
  summary = lambda x: {"mean": float(np.mean(x)),
                       **{f"p{q}": float(np.percentile(x, q)) for q in PERCENTILES}}
  positions = []
  for pos in range(len(ids)):
    positions.append({"position": pos, "norm": float(norms[pos]), "nearest": [
        {"id": int(i), "token": decode(int(i)) if decode else None, "cosine": float(c)}
        for i, c in zip(ids[pos], sims[pos])]})
  return {"name": name, "shape": list(np.shape(prompt)), "positions": positions,
          "embedding_norms": summary(table_norms), "prompt_norms": summary(norms)}


def format_table(report: dict) -> str:
  """The report of `interpret` as a text table, one line per prompt position."""
  e, p = report["embedding_norms"], report["prompt_norms"]
  lines = [f"{report['name']} {tuple(report['shape'])}: prompt norms median {p['p50']:.3g} "
           f"({p['p5']:.3g}-{p['p95']:.3g}); embedding norms median {e['p50']:.3g} "
           f"({e['p5']:.3g}-{e['p95']:.3g}, 5th-95th percentile)",
           f"{'pos':>4} {'norm':>8}  nearest tokens (cosine)"]
  for row in report["positions"]:
    tokens = "  ".join(f"{n['token'] if n['token'] is not None else n['id']!r} "
                       f"[{n['id']}] ({n['cosine']:.2f})" for n in row["nearest"])
    lines.append(f"{row['position']:>4} {row['norm']:>8.3g}  {tokens}")
  return "\n".join(lines)


def plot_norms(reports: Sequence[dict], embedding: np.ndarray, out_path: str,
               title: Optional[str] = None) -> str:
  """A PNG: the embedding table's norm histogram, each prompt position's norm marked."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  table_norms = np.linalg.norm(np.asarray(embedding, np.float32), axis=-1)
  fig, ax = plt.subplots(figsize=(8, 3.6))
  ax.hist(table_norms, bins=50, color="lightgray", label="token embeddings")
  for report in reports:
    norms = [row["norm"] for row in report["positions"]]
    ax.plot(norms, np.zeros_like(norms), "|", markersize=30, label=report["name"])
  ax.set(xlabel="L2 norm", ylabel="tokens", title=title or "prompt norms vs token embeddings")
  ax.legend(loc="upper right")
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
  return out_path


def prompts_of(value: Any, name: str) -> list[tuple[str, np.ndarray]]:
  """[(name, [P, D])] of a [P, D] prompt or each member of a [K, P, D] bank."""
  value = np.asarray(value, np.float32)
  if value.ndim == 2:
    return [(name, value)]
  if value.ndim == 3:
    return [(f"{name}[{k}]", v) for k, v in enumerate(value)]
  raise ValueError(f"{name}: prompt has shape {value.shape}; expected [P, D] or [K, P, D].")
