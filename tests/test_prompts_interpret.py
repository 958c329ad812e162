"""Nearest-token interpretation against a brute-force cosine computation."""
import numpy as np
import pytest

from prompt_tuning.prompts.interpret import nearest_tokens


def test_nearest_tokens_ranks_by_cosine_not_dot_product():
  embedding = np.array([[1.0, 0.0], [10.0, 10.0], [0.0, 1.0], [-1.0, 0.0]])
  prompt = np.array([[2.0, 0.1], [0.0, -3.0]])
  ids, sims = nearest_tokens(prompt, embedding, k=2)
  # Row 0: [1,0] is closest in angle even though [10,10] has the larger dot product.
  brute = np.array([[np.dot(p, e) / np.linalg.norm(p) / np.linalg.norm(e)
                     for e in embedding] for p in prompt])
  np.testing.assert_array_equal(ids[0], [0, 1])
  np.testing.assert_allclose(sims, np.take_along_axis(brute, ids, 1), rtol=1e-6)
  assert ids[1, 0] in (0, 3)  # orthogonal-ish ties resolve to the best cosine
  np.testing.assert_allclose(sims[1, 0], brute[1].max(), rtol=1e-6)


def test_nearest_tokens_rejects_mismatched_dims():
  with pytest.raises(ValueError, match="same D"):
    nearest_tokens(np.zeros((2, 3)), np.zeros((5, 4)))
  with pytest.raises(ValueError, match="expected 1..5"):
    nearest_tokens(np.zeros((2, 4)), np.zeros((5, 4)), k=6)
