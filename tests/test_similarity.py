"""SPoT's task similarity from prompts, against hand-computed values and sklearn."""
import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from prompt_tuning.library import similarity

# [P=2, D=2] and [Q=3, D=2]: small enough to do by hand.
A = np.array([[1.0, 0.0], [1.0, 2.0]])       # mean (1, 1)
B = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, -1.0]])   # mean (2/3, 0)


def test_average_cosine_by_hand():
  # cos((1, 1), (2/3, 0)) = (2/3) / (sqrt(2) * 2/3) = 1 / sqrt(2)
  assert similarity.average_cosine(A, B) == pytest.approx(1 / np.sqrt(2), abs=1e-12)
  assert similarity.average_cosine(A, A) == pytest.approx(1.0)
  assert similarity.average_cosine(A, -A) == pytest.approx(-1.0)


def test_per_token_cosine_by_hand():
  # a0 = (1, 0): cosines with b = 0, 1, 0; a1 = (1, 2)/sqrt(5): 2/sqrt5, 1/sqrt5, -2/sqrt5
  want = (0 + 1 + 0 + 2 / np.sqrt(5) + 1 / np.sqrt(5) - 2 / np.sqrt(5)) / 6
  assert similarity.per_token_cosine(A, B) == pytest.approx(want, abs=1e-12)
  # not the average-token measure: the two differ on this pair
  assert abs(similarity.per_token_cosine(A, B) - similarity.average_cosine(A, B)) > 0.3


def test_both_measures_equal_sklearn_and_are_symmetric():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(5, 16)), rng.normal(size=(7, 16))
  assert similarity.per_token_cosine(a, b) == pytest.approx(cosine_similarity(a, b).mean(),
                                                            abs=1e-12)
  assert similarity.average_cosine(a, b) == pytest.approx(
      cosine_similarity(a.mean(0, keepdims=True), b.mean(0, keepdims=True))[0, 0], abs=1e-12)
  for measure in similarity.MEASURES.values():
    assert measure(a, b) == pytest.approx(measure(b, a), abs=1e-12)


def test_rank_orders_most_similar_first():
  target = np.array([[1.0, 0.1], [0.9, 0.0]])
  sources = {"same": target * 3, "orthogonal": np.array([[0.0, 1.0]]),
             "opposite": -target}
  for measure in ("average", "per_token"):
    names = [n for n, _ in similarity.rank(target, sources, measure)]
    assert names == ["same", "orthogonal", "opposite"]


def test_bad_shapes_and_measures_are_refused():
  with pytest.raises(ValueError, match=r"shapes \(2, 2\) and \(2, 3\); expected"):
    similarity.average_cosine(A, np.ones((2, 3)))
  with pytest.raises(ValueError, match="expected two non-empty"):
    similarity.per_token_cosine(A[0], B)
  with pytest.raises(ValueError, match="measure 'max'; expected one of"):
    similarity.rank(A, {"b": B}, "max")
