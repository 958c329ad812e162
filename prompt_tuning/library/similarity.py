"""Task similarity from prompts: SPoT's prompt-based task embeddings (Vu et al. 2022, §4).

A prompt tuned on a task is that task's embedding. Two measures, both cosine
similarities and both symmetric:

  average_cosine(a, b)    cos(mean_p a[p], mean_q b[q])   -- of the average tokens
  per_token_cosine(a, b)  mean_{p, q} cos(a[p], b[q])     -- over all token pairs

Plain numpy on [P, D] prompts; prompts of different lengths compare (the
averages, and the pairs, do not need P to match), widths must.
"""
import numpy as np

_EPS = 1e-12


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or 0 in a.shape + b.shape:
    raise ValueError(f"prompts of shapes {a.shape} and {b.shape}; expected two non-empty "
                     "[P, D] prompts of one width D.")
  return a, b


def _unit(x: np.ndarray) -> np.ndarray:
  """[..., D] rows scaled to unit L2 norm (a zero row stays zero)."""
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def average_cosine(a: np.ndarray, b: np.ndarray) -> float:
  """Cosine similarity of the prompts' average tokens.

  Args:
    a: [P, D] prompt.
    b: [Q, D] prompt.

  Returns:
    cos(mean over P of a, mean over Q of b), in [-1, 1].
  """
  a, b = _check(a, b)
  return float(_unit(a.mean(0)) @ _unit(b.mean(0)))


def per_token_cosine(a: np.ndarray, b: np.ndarray) -> float:
  """Average cosine similarity over every pair of tokens (one from each prompt).

  Args:
    a: [P, D] prompt.
    b: [Q, D] prompt.

  Returns:
    (1 / (P Q)) sum_{p, q} cos(a[p], b[q]), in [-1, 1].
  """
  a, b = _check(a, b)
  # [P, D] x [Q, D] -> [P, Q] cosines
  return float((_unit(a) @ _unit(b).T).mean())


MEASURES = {"average": average_cosine, "per_token": per_token_cosine}


def rank(target: np.ndarray, sources: dict, measure: str = "average") -> list[tuple[str, float]]:
  """Sources ranked by similarity to the target, most similar first.

  Args:
    target: [P, D] prompt of the target task (a short run on it).
    sources: {name: [Q, D] prompt}.
    measure: "average" or "per_token".

  Returns:
    [(name, similarity)], descending (ties by name).
  """
  if measure not in MEASURES:
    raise ValueError(f"similarity measure {measure!r}; expected one of {sorted(MEASURES)}.")
  scores = [(name, MEASURES[measure](target, prompt)) for name, prompt in sources.items()]
  return sorted(scores, key=lambda s: (-s[1], s[0]))
