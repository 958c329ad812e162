"""Each prompt initializer against its definition (Lester et al. 2021, section 3.2)."""
import jax
import numpy as np
import pytest
import seqio

from prompt_tuning.prompts import initializers

TABLE = np.arange(40 * 4, dtype=np.float32).reshape(40, 4) / 7.0  # [V=40, D=4], rows distinct


def test_random_uniform_covers_minus_half_to_half():
  # The default is the paper's scale, 0.5.
  for init in (initializers.random_uniform(0.5), initializers.random_uniform()):
    x = init(jax.random.PRNGKey(0), (100, 64))
    assert x.shape == (100, 64) and x.dtype == np.float32
    assert -0.5 <= x.min() < -0.49 and 0.49 < x.max() <= 0.5


def test_sampled_vocab_rows_are_distinct_rows_of_the_first_n_ids():
  x = initializers.sampled_vocab(num_ids=10)(jax.random.PRNGKey(1), (6, 4), TABLE)
  ids = [int(np.flatnonzero((TABLE == row).all(1))[0]) for row in x]
  assert len(set(ids)) == 6 and max(ids) < 10
  with pytest.raises(ValueError, match="cannot draw 12 distinct rows"):
    initializers.sampled_vocab(num_ids=10)(jax.random.PRNGKey(1), (12, 4), TABLE)
  # A float64 (or bfloat16) table still gives a float32 prompt; N must be >= 1.
  wide = initializers.sampled_vocab(num_ids=10)(jax.random.PRNGKey(1), (6, 4),
                                                TABLE.astype(np.float64))
  assert wide.dtype == np.float32
  np.testing.assert_array_equal(wide, x)
  for bad in (0, -1):
    with pytest.raises(ValueError, match=f"num_ids={bad}; expected > 0"):
      initializers.sampled_vocab(num_ids=bad)
  every = initializers.sampled_vocab(num_ids=10)(jax.random.PRNGKey(1), (10, 4), TABLE)
  np.testing.assert_array_equal(np.sort(every, axis=0), np.sort(TABLE[:10], axis=0))  # all N
  np.testing.assert_array_equal(  # N = 1: the first row only
      initializers.sampled_vocab(num_ids=1)(jax.random.PRNGKey(1), (1, 4), TABLE), TABLE[:1])
  with pytest.raises(ValueError, match=r"^sampled_vocab: prompt shape \(0, 4\); expected"):
    initializers.sampled_vocab()(jax.random.PRNGKey(1), (0, 4), TABLE)
  with pytest.raises(ValueError, match=r"^sampled_vocab needs the frozen \[V, D\] embedding"):
    initializers.sampled_vocab()(jax.random.PRNGKey(1), (6, 4), None)
  # The paper's default: the 5,000 most common ids, so 5,001 rows cannot be drawn.
  big = np.zeros((5001, 2), np.float32)
  with pytest.raises(ValueError, match="cannot draw 5001 distinct rows from the first 5000"):
    initializers.sampled_vocab()(jax.random.PRNGKey(0), (5001, 2), big)


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
  for unset in (None, ""):  # PROMPT_FILE left unset: the same error, not a TypeError
    with pytest.raises(ValueError, match="no such file"):
      initializers.from_file(unset)(jax.random.PRNGKey(0), (3, 4), None)


def test_class_labels_fill_every_position_when_there_are_as_many_labels():
  vocab = seqio.ByteVocabulary()
  table = np.random.RandomState(3).randn(300, 4).astype(np.float32)

  def fill(*args):
    raise AssertionError(f"fill called with {args}: no position is left for it")

  labels = ["no", "yes", "maybe"]
  x = initializers.class_labels(labels, vocab, fill=fill)(jax.random.PRNGKey(0), (3, 4), table)
  assert x.dtype == np.float32
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


class _FixedIds:
  """A vocabulary stand-in whose `encode` returns the ids it was given."""

  def __init__(self, ids):
    self.ids = list(ids)

  def encode(self, text):
    del text
    return self.ids


def test_token_ids_must_be_rows_of_the_table_and_id_0_is_one():
  # TABLE has 40 rows: ids 0 (T5's pad, still a row) and 39 are in, 40 is not.
  x = initializers.from_text("x", _FixedIds([0, 39]))(jax.random.PRNGKey(0), (2, 4), TABLE)
  np.testing.assert_array_equal(x, TABLE[[0, 39]])
  x = initializers.class_labels(["x"], _FixedIds([0]))(jax.random.PRNGKey(0), (1, 4), TABLE)
  np.testing.assert_array_equal(x, TABLE[[0]])
  for bad in (40, -1):
    with pytest.raises(ValueError, match=rf"from_text: 'x' tokenizes to ids \[{bad}\] outside "
                                         r"the embedding table's 40 rows"):
      initializers.from_text("x", _FixedIds([3, bad]))(jax.random.PRNGKey(0), (4, 4), TABLE)
    with pytest.raises(ValueError, match=rf"class_labels: 'x' tokenizes to ids \[{bad}\]"):
      initializers.class_labels(["x"], _FixedIds([bad]))(jax.random.PRNGKey(0), (4, 4), TABLE)


def test_the_positions_after_the_text_come_from_the_given_fill_as_float32():
  vocab = seqio.ByteVocabulary()
  table = np.random.RandomState(5).randn(300, 4).astype(np.float32)
  calls = []

  def fill(rng, shape, embedding):  # float64 on purpose
    calls.append(shape)
    return np.full(shape, 0.25, np.float64)

  for init, first in ((initializers.from_text("hi", vocab, fill=fill), table[vocab.encode("hi")]),
                      (initializers.class_labels(["hi", "c"], vocab, fill=fill),
                       [table[vocab.encode("hi")].mean(0), table[vocab.encode("c")][0]])):
    x = init(jax.random.PRNGKey(0), (5, 4), table)
    assert x.shape == (5, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[:2], first, rtol=1e-6)
    np.testing.assert_array_equal(x[2:], np.full((3, 4), 0.25, np.float32))
  assert calls == [(3, 4), (3, 4)]


def test_a_text_of_exactly_prompt_length_tokens_fills_the_whole_prompt():
  vocab = seqio.ByteVocabulary()
  table = np.random.RandomState(6).randn(300, 4).astype(np.float32)

  def fill(*args):
    raise AssertionError(f"fill called with {args}: no position is left for it")

  x = initializers.from_text("hi", vocab, fill=fill)(jax.random.PRNGKey(0), (2, 4), table)
  assert x.dtype == np.float32
  np.testing.assert_array_equal(x, table[vocab.encode("hi")])
  with pytest.raises(ValueError, match="from_text: 'hi!' is 3 tokens but PROMPT_LENGTH=2"):
    initializers.from_text("hi!", vocab, fill=fill)(jax.random.PRNGKey(0), (2, 4), table)


def test_class_labels_default_fill_is_distinct_rows_of_the_table():
  vocab = seqio.ByteVocabulary()
  table = np.random.RandomState(7).randn(300, 4).astype(np.float32)
  x = initializers.class_labels(["ab"], vocab)(jax.random.PRNGKey(0), (6, 4), table)
  ids = [int(np.flatnonzero((table == row).all(1))[0]) for row in x[1:]]
  assert len(set(ids)) == 5  # sampled_vocab(5000), clipped to the table's 300 rows


def test_class_labels_must_be_a_list_of_labels():
  vocab = seqio.ByteVocabulary()
  for labels in ("True", []):
    with pytest.raises(ValueError, match=r"CLASS_LABELS=.*; expected a non-empty list of label "
                                         r"strings"):
      initializers.class_labels(labels, vocab)


@pytest.mark.parametrize("name,build", [
    ("random_uniform", initializers.random_uniform),
    ("class_labels", lambda: initializers.class_labels(["a"], seqio.ByteVocabulary())),
    ("from_text", lambda: initializers.from_text("a", seqio.ByteVocabulary())),
    ("from_file", lambda: initializers.from_file("unused.npy"))])
def test_initializer_errors_name_the_initializer(name, build):
  table = np.zeros((300, 4), np.float32)
  with pytest.raises(ValueError, match=rf"^{name}: prompt shape \(0, 4\); expected"):
    build()(jax.random.PRNGKey(0), (0, 4), table)
  if name in ("random_uniform", "from_file"):
    return
  with pytest.raises(ValueError, match=rf"^{name} needs the frozen \[V, D\] embedding table"):
    build()(jax.random.PRNGKey(0), (3, 4), None)
  with pytest.raises(ValueError, match=rf"^{name}: embedding table has shape \(300, 4\); "
                                       r"expected \[vocab_size, d_model=8\]"):
    build()(jax.random.PRNGKey(0), (3, 8), table)
  empty = (initializers.class_labels([""], seqio.ByteVocabulary()) if name == "class_labels"
           else initializers.from_text("", seqio.ByteVocabulary()))
  with pytest.raises(ValueError, match=rf"^{name}: '' tokenizes to no tokens"):
    empty(jax.random.PRNGKey(0), (3, 4), table)


def test_from_file_returns_float32_and_refuses_a_pickled_array(tmp_path):
  prompt = np.random.RandomState(8).randn(3, 4)  # float64 on disk
  np.save(tmp_path / "p64.npy", prompt)
  got = initializers.from_file(str(tmp_path / "p64.npy"))(jax.random.PRNGKey(0), (3, 4), None)
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, prompt.astype(np.float32))
  # An object array is a pickle: loading it could run code, so it is refused.
  np.save(tmp_path / "obj.npy", prompt.astype(object), allow_pickle=True)
  with pytest.raises(ValueError, match="PROMPT_FILE=.*obj.npy.*allow_pickle=False"):
    initializers.from_file(str(tmp_path / "obj.npy"))(jax.random.PRNGKey(0), (3, 4), None)


def test_make_prompt_calls_the_init_with_the_key_and_names_the_prompt_in_errors():
  from prompt_tuning.prompts import spec as spec_lib  # pylint: disable=import-outside-toplevel
  init = initializers.sampled_vocab(num_ids=10)
  key = jax.random.PRNGKey(4)
  one = initializers.make_prompt(spec_lib.encoder_prompt(3, init=init), TABLE, key)
  np.testing.assert_array_equal(one, init(key, (3, 4), TABLE))  # this key, not a fold of it
  wide = lambda rng, shape, table: np.ones(shape, np.float64)  # a user's init, float64
  got = initializers.make_prompt(spec_lib.encoder_prompt(3, init=wide), TABLE, key)
  assert got.dtype == np.float32 and got.shape == (3, 4)
  wrong = lambda rng, shape, table: np.zeros((shape[0] + 1, shape[1]), np.float32)
  with pytest.raises(ValueError, match=r"^PROMPT_INIT returned shape \(4, 4\) for encoder/"):
    initializers.make_prompt(spec_lib.encoder_prompt(3, init=wrong), TABLE, key)
  with pytest.raises(ValueError, match=r"^decoder prompt init returned shape \(4, 4\) for dec"):
    initializers.make_prompt(spec_lib.decoder_prompt(3, init=wrong), TABLE, key)
