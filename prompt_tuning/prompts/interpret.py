"""Reads a learned prompt through the vocabulary: nearest tokens by cosine.

Lester et al. (2021, section 7) interpret prompts by the nearest neighbours of
each prompt vector in the frozen embedding table, using cosine similarity.
"""
import numpy as np


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
