"""Prompt initializers (Lester et al. 2021, section 3.2), as closures.

Every builder returns `init(rng, shape, embedding) -> [P, D] float32`, where
`shape` is (PROMPT_LENGTH, d_model) and `embedding` is the frozen [V, D] token
embedding table (`token_embedder/embedding`), which the train loop passes in.
Initializers that need no table (random uniform, from file) ignore it.

  random_uniform(0.5)      U[-0.5, 0.5] (the paper's random init)
  sampled_vocab(5000)      rows of the table, without replacement, ids [0, 5000)
  class_labels(labels, v)  row i = mean of label i's sub-token embeddings; the
                           rest from `fill` (sampled vocab) -- the paper's best
  from_text(text, v)       the text's token embeddings, then `fill`
  from_file(path)          a saved [P, D] prompt (.npy or PEFT adapter), e.g. SPoT

`make_prompt(spec, embedding, rng)` runs a spec's initializer (default
U[-0.5, 0.5]) and checks what it returns; for a bank of K prompts it runs it K
times, prompt k with `fold_in(rng, k)`. Errors name what was expected and
what was found; they are raised when the prompt is built, before a run writes
anything.
"""
import os
from typing import Optional, Sequence

import jax
import numpy as np

from prompt_tuning.prompts import export, prompt as prompt_lib
from prompt_tuning.prompts import spec as spec_lib

Array = jax.Array
# (rng, (P, D), [V, D] frozen embedding table) -> [P, D] float32 prompt.
PromptInit = spec_lib.PromptInit


def _check_shape(shape, name: str) -> tuple[int, int]:
  if len(shape) != 2 or min(shape) <= 0:
    raise ValueError(f"{name}: prompt shape {tuple(shape)}; expected (PROMPT_LENGTH, "
                     "d_model) with both > 0.")
  return int(shape[0]), int(shape[1])


def _check_embedding(embedding, d_model: int, name: str) -> np.ndarray:
  if embedding is None:
    raise ValueError(f"{name} needs the frozen [V, D] embedding table; got None.")
  table = np.asarray(embedding, np.float32)
  if table.ndim != 2 or table.shape[1] != d_model:
    raise ValueError(f"{name}: embedding table has shape {table.shape}; expected "
                     f"[vocab_size, d_model={d_model}].")
  return table


def _token_ids(vocab, text: str, name: str, vocab_size: int) -> list[int]:
  ids = [int(i) for i in vocab.encode(text)]
  if not ids:
    raise ValueError(f"{name}: {text!r} tokenizes to no tokens with {vocab}.")
  bad = [i for i in ids if not 0 <= i < vocab_size]
  if bad:
    raise ValueError(f"{name}: {text!r} tokenizes to ids {bad} outside the embedding "
                     f"table's {vocab_size} rows; is VOCABULARY the model's vocabulary?")
  return ids


def random_uniform(scale: float = 0.5) -> PromptInit:
  """Samples every prompt value from U[-scale, scale] (the paper: scale 0.5).

  Not `flax.linen.initializers.uniform(0.5)`, which samples [0, 0.5).
  """
  uniform = prompt_lib.uniform_symmetric(scale)

  def init(rng, shape, embedding=None):
    del embedding  # the table plays no part
    _check_shape(shape, "random_uniform")
    return np.asarray(uniform(rng, tuple(shape)), np.float32)
  return init


def sampled_vocab(num_ids: int = 5000) -> PromptInit:
  """Copies rows of the frozen table, drawn without replacement from ids [0, N).

  The paper samples from the 5,000 most common tokens; T5's SentencePiece
  vocabulary is ordered by frequency, so these are its first 5,000 ids. N is
  clipped to the table size.
  """
  if num_ids <= 0:
    raise ValueError(f"sampled_vocab: num_ids={num_ids}; expected > 0.")

  def init(rng, shape, embedding=None):
    length, d_model = _check_shape(shape, "sampled_vocab")
    table = _check_embedding(embedding, d_model, "sampled_vocab")
    population = min(num_ids, table.shape[0])
    if length > population:
      raise ValueError(
          f"sampled_vocab: cannot draw {length} distinct rows from the first "
          f"{population} ids (num_ids={num_ids}, vocab_size={table.shape[0]}); "
          "lower PROMPT_LENGTH or raise num_ids.")
    ids = np.asarray(jax.random.choice(rng, population, (length,), replace=False))
    return table[ids]
  return init


def _prefix_then_fill(rows: np.ndarray, fill: PromptInit, rng, shape, table, name):
  """[K, D] given rows in the first K positions; `fill` makes the other P - K."""
  length, d_model = shape
  if len(rows) > length:
    raise ValueError(f"{name}: {len(rows)} rows do not fit PROMPT_LENGTH={length}.")
  if len(rows) == length:
    return rows.astype(np.float32)
  rest = np.asarray(fill(rng, (length - len(rows), d_model), table), np.float32)
  return np.concatenate([rows.astype(np.float32), rest], axis=0)


def class_labels(labels: Sequence[str], vocab, fill: Optional[PromptInit] = None
                 ) -> PromptInit:
  """One prompt position per class label: the mean of its sub-token embeddings.

  Positions 0..len(labels)-1 hold the labels in the order given (so a
  multi-token label such as "not_entailment" is one averaged vector); the
  remaining positions come from `fill` (default: `sampled_vocab(5000)`), as the
  paper's class-label init does.

  Args:
    labels: the verbalizer's label strings (CLASS_LABELS).
    vocab: a seqio vocabulary with `encode(str) -> ids` (VOCABULARY).
    fill: initializer for the positions after the labels.
  """
  if isinstance(labels, str) or not labels:
    raise ValueError(f"class_labels: CLASS_LABELS={labels!r}; expected a non-empty "
                     "list of label strings, e.g. ['False', 'True'].")
  labels = [str(label) for label in labels]
  fill = sampled_vocab() if fill is None else fill

  def init(rng, shape, embedding=None):
    length, d_model = _check_shape(shape, "class_labels")
    if len(labels) > length:
      raise ValueError(
          f"class_labels: {len(labels)} CLASS_LABELS {labels} but PROMPT_LENGTH="
          f"{length}; expected at most one label per prompt position.")
    table = _check_embedding(embedding, d_model, "class_labels")
    rows = np.stack([table[_token_ids(vocab, label, "class_labels",
                                      table.shape[0])].mean(axis=0)
                     for label in labels])
    return _prefix_then_fill(rows, fill, rng, (length, d_model), table, "class_labels")
  return init


def from_text(text: str, vocab, fill: Optional[PromptInit] = None) -> PromptInit:
  """The embeddings of `text`'s tokens in the first positions, then `fill`.

  Args:
    text: e.g. a task description; must tokenize to at most PROMPT_LENGTH ids.
    vocab: a seqio vocabulary (VOCABULARY).
    fill: initializer for the positions after the text (default sampled vocab).
  """
  fill = sampled_vocab() if fill is None else fill

  def init(rng, shape, embedding=None):
    length, d_model = _check_shape(shape, "from_text")
    table = _check_embedding(embedding, d_model, "from_text")
    ids = _token_ids(vocab, text, "from_text", table.shape[0])
    if len(ids) > length:
      raise ValueError(f"from_text: {text!r} is {len(ids)} tokens but PROMPT_LENGTH="
                       f"{length}; expected at most {length}.")
    return _prefix_then_fill(table[ids], fill, rng, (length, d_model), table,
                             "from_text")
  return init


def from_file(path: str) -> PromptInit:
  """Starts from a saved [P, D] prompt (PROMPT_FILE), e.g. for SPoT-style transfer.

  `path` is a `.npy`, a directory of prompt files (ours, or the reference's
  numpy checkpoint) or a Hugging Face PEFT prompt-tuning adapter; the encoder
  prompt is read (`export.read_prompt_file`). Its shape must equal
  (PROMPT_LENGTH, d_model) exactly; values must be finite.
  """
  def init(rng, shape, embedding=None):
    del rng, embedding
    length, d_model = _check_shape(shape, "from_file")
    if not path or not os.path.exists(path):
      raise ValueError(f"PROMPT_FILE={path!r}: no such file; expected a .npy file (or a PEFT "
                       f"adapter directory) holding a [{length}, {d_model}] prompt.")
    try:
      flat = export.read_prompt_file(path)
    except ValueError as e:
      raise ValueError(f"PROMPT_FILE={path!r}: {e}") from e
    if spec_lib.PROMPT_PATH not in flat:
      raise ValueError(f"PROMPT_FILE={path!r} holds no encoder prompt; found {sorted(flat)}.")
    value = flat[spec_lib.PROMPT_PATH]
    if value.shape != (length, d_model):
      raise ValueError(f"PROMPT_FILE={path!r}: prompt has shape {value.shape}; expected "
                       f"(PROMPT_LENGTH, d_model) = ({length}, {d_model}).")
    return value.astype(np.float32)
  return init


def make_prompt(spec: spec_lib.PromptSpec, embedding: np.ndarray, rng) -> np.ndarray:
  """The first value of a spec's prompt (or bank), checked.

  Args:
    spec: the prompt; `spec.init` makes each [P, D] prompt (None: U[-0.5, 0.5]).
    embedding: [V, D] frozen token embedding table (the initializers that read
      it need it; D is the model width).
    rng: PRNG key; bank member k uses `fold_in(rng, k)`.

  Returns:
    float32 array of `spec.shape(D)`: [P, D], or [K, P, D] for a bank.

  Raises:
    ValueError: the initializer returned the wrong shape or non-finite values.
  """
  init = random_uniform() if spec.init is None else spec.init
  table = np.asarray(embedding, np.float32)
  one = (int(spec.length), int(table.shape[1]))
  name = "PROMPT_INIT" if spec.stack == spec_lib.ENCODER else "decoder prompt init"
  rngs = [rng] if not spec.is_bank else [jax.random.fold_in(rng, k)
                                         for k in range(spec.num_prompts)]
  values = []
  for key in rngs:
    value = np.asarray(init(key, one, table), np.float32)
    if value.shape != one:
      raise ValueError(f"{name} returned shape {value.shape} for {spec.path}; expected "
                       f"(P, d_model) = {one}.")
    if not np.all(np.isfinite(value)):
      raise ValueError(f"{name} returned non-finite values for {spec.path}.")
    values.append(value)
  return np.stack(values) if spec.is_bank else values[0]
