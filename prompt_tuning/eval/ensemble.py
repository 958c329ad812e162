"""Prompt ensembles (Lester et al. 2021, section 6): how members' outputs are combined.

The paper ensembles five prompts of one task on one frozen model by majority
vote over their decoded answers. For rank classification (scores of every
option) the members' log-likelihoods are averaged instead, which keeps the
ensemble's answer a legal option.
"""
import collections
import math
from typing import Mapping, Sequence

import numpy as np


def majority_vote(decoded: np.ndarray) -> np.ndarray:
  """The most common decode of each example.

  Args:
    decoded: [B, K, T] token ids of K members (0 after EOS, so equal answers
      are equal rows).

  Returns:
    [B, T]: per example the row most members decoded; a tie goes to the
    member with the lowest index among the tied answers.
  """
  decoded = np.asarray(decoded)
  if decoded.ndim != 3 or decoded.shape[1] < 1:
    raise ValueError(f"majority_vote: decoded has shape {decoded.shape}; expected [B, K, T] "
                     "with K >= 1.")
  out = np.empty((decoded.shape[0], decoded.shape[2]), decoded.dtype)
  for b, rows in enumerate(decoded):
    keys = [tuple(r.tolist()) for r in rows]
    counts = collections.Counter(keys)
    top = max(counts.values())
    out[b] = rows[next(i for i, key in enumerate(keys) if counts[key] == top)]
  return out


def mean_score(scores: np.ndarray) -> np.ndarray:
  """[B, K] members' log-likelihoods -> [B] their mean (the ensemble's score)."""
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 2:
    raise ValueError(f"mean_score: scores has shape {scores.shape}; expected [B, K].")
  return scores.mean(axis=1)


def summarize(members: Sequence[Mapping[str, float]]) -> dict:
  """{"mean": {...}, "std": {...}} over members, per metric every member reported.

  The standard deviation is the sample one (ddof 1), as for the paper's runs; 0
  for a single member.
  """
  keys = sorted(set.intersection(*(set(m) for m in members))) if members else []
  mean, std = {}, {}
  for key in keys:
    values = np.array([m[key] for m in members], np.float64)
    mean[key] = float(values.mean())
    std[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    if not math.isfinite(mean[key]):
      mean[key] = std[key] = float("nan")
  return {"mean": mean, "std": std}
