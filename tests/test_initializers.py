"""Each prompt initializer against its definition (Lester et al. 2021, section 3.2)."""
import jax
import numpy as np
import pytest
import seqio

from prompt_tuning.prompts import initializers

TABLE = np.arange(40 * 4, dtype=np.float32).reshape(40, 4) / 7.0  # [V=40, D=4], rows distinct


def test_random_uniform_covers_minus_half_to_half():
  x = initializers.random_uniform(0.5)(jax.random.PRNGKey(0), (100, 64))
  assert x.shape == (100, 64) and x.dtype == np.float32
  assert -0.5 <= x.min() < -0.49 and 0.49 < x.max() <= 0.5


def test_sampled_vocab_rows_are_distinct_rows_of_the_first_n_ids():
  x = initializers.sampled_vocab(num_ids=10)(jax.random.PRNGKey(1), (6, 4), TABLE)
  ids = [int(np.flatnonzero((TABLE == row).all(1))[0]) for row in x]
  assert len(set(ids)) == 6 and max(ids) < 10
  with pytest.raises(ValueError, match="cannot draw 12 distinct rows"):
    initializers.sampled_vocab(num_ids=10)(jax.random.PRNGKey(1), (12, 4), TABLE)


def test_class_labels_rows_are_mean_sub_token_embeddings():
  vocab = seqio.ByteVocabulary()  # ids = byte + 3, so "ab" -> [100, 101]
  table = np.random.RandomState(0).randn(300, 4).astype(np.float32)
  init = initializers.class_labels(["ab", "c"], vocab, fill=initializers.sampled_vocab(50))
  x = init(jax.random.PRNGKey(2), (5, 4), table)
  np.testing.assert_allclose(x[0], table[vocab.encode("ab")].mean(0), rtol=1e-6)
  np.testing.assert_allclose(x[1], table[vocab.encode("c")].mean(0), rtol=1e-6)
  assert len(vocab.encode("ab")) == 2
  # The mean, not the first or last sub-token ("ab" is two rows that differ):
  for one in vocab.encode("ab"):
    assert np.abs(x[0] - table[one]).max() > 0.1
  for row in x[2:]:  # the rest: rows of the first 50 ids
    assert np.flatnonzero((table[:50] == row).all(1)).size == 1
  with pytest.raises(ValueError, match="3 CLASS_LABELS .* PROMPT_LENGTH=2"):
    initializers.class_labels(["a", "b", "c"], vocab)(jax.random.PRNGKey(0), (2, 4), table)


def test_from_text_puts_token_embeddings_first():
  vocab = seqio.ByteVocabulary()
  table = np.random.RandomState(1).randn(300, 4).astype(np.float32)
  x = initializers.from_text("hi", vocab)(jax.random.PRNGKey(3), (4, 4), table)
  np.testing.assert_array_equal(x[:2], table[vocab.encode("hi")])


def test_from_file_checks_shape_and_loads_exactly(tmp_path):
  prompt = np.random.RandomState(2).randn(3, 4).astype(np.float32)
  np.save(tmp_path / "p.npy", prompt)
  got = initializers.from_file(str(tmp_path / "p.npy"))(jax.random.PRNGKey(0), (3, 4), None)
  np.testing.assert_array_equal(got, prompt)
  with pytest.raises(ValueError, match=r"prompt has shape \(3, 4\); expected .* \(5, 4\)"):
    initializers.from_file(str(tmp_path / "p.npy"))(jax.random.PRNGKey(0), (5, 4), None)
  with pytest.raises(ValueError, match="no such file"):
    initializers.from_file(str(tmp_path / "missing.npy"))(jax.random.PRNGKey(0), (3, 4), None)


def test_class_labels_fill_every_position_when_there_are_as_many_labels():
  vocab = seqio.ByteVocabulary()
  table = np.random.RandomState(3).randn(300, 4).astype(np.float32)

  def fill(*args):
    raise AssertionError(f"fill called with {args}: no position is left for it")

  labels = ["no", "yes", "maybe"]
  x = initializers.class_labels(labels, vocab, fill=fill)(jax.random.PRNGKey(0), (3, 4), table)
  for i, label in enumerate(labels):
    np.testing.assert_allclose(x[i], table[vocab.encode(label)].mean(0), rtol=1e-6)


def test_class_labels_are_averaged_over_the_words_of_a_multi_word_label():
  # A word-level vocabulary: "red cat" is two ids, two different rows.
  from prompt_tuning.testing import tiny  # pylint: disable=import-outside-toplevel
  vocab = tiny.WordVocabulary()
  table = np.random.RandomState(4).randn(64, 4).astype(np.float32)
  ids = vocab.encode("red cat")
  assert len(ids) == 2
  x = initializers.class_labels(["red cat", "dog"], vocab, fill=initializers.sampled_vocab(20))(
      jax.random.PRNGKey(0), (4, 4), table)
  np.testing.assert_allclose(x[0], (table[ids[0]] + table[ids[1]]) / 2, rtol=1e-6)
  np.testing.assert_allclose(x[1], table[vocab.encode("dog")[0]], rtol=1e-6)
