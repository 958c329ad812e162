"""The vocabulary of the frozen T5: T5's SentencePiece model, or any local one.

T5 1.1 uses `cc_all.32000.100extra`: 32000 SentencePiece pieces plus 100
sentinel ids (<extra_id_0> ... <extra_id_99>); the model's embedding table is
padded to 32128 rows. SentencePiece ids follow T5's convention: pad 0, eos 1,
unk 2, no bos.

`get_vocabulary` is what VOCABULARY resolves to; `train_sentencepiece` builds a
small model from text for tests and the offline demo.
"""
import os
from typing import Iterable, Optional, Sequence

import seqio

DEFAULT_VOCABULARY_PATH = "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model"
DEFAULT_EXTRA_IDS = 100
# The file a Hugging Face T5 checkpoint directory keeps its SentencePiece model in.
HF_SENTENCEPIECE_FILE = "spiece.model"

# T5's SentencePiece special ids.
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2


def _is_remote(path: str) -> bool:
  """gs://, s3://, ...: read lazily by TensorFlow's file system, never checked here."""
  return "://" in path


def resolve_vocabulary_path(path: str) -> str:
  """The SentencePiece model file that `path` names.

  Args:
    path: a `.model` file, a Hugging Face T5 directory holding `spiece.model`,
      or a remote (`gs://...`) file, which is not checked.

  Raises:
    FileNotFoundError: a local path that is neither (what was looked for is named).
  """
  if not isinstance(path, str) or not path:
    raise FileNotFoundError(f"VOCABULARY={path!r}; expected a SentencePiece .model path, a "
                            f"Hugging Face T5 directory with {HF_SENTENCEPIECE_FILE}, or a "
                            "gs:// path.")
  if _is_remote(path):
    return path
  if os.path.isdir(path):
    model = os.path.join(path, HF_SENTENCEPIECE_FILE)
    if not os.path.isfile(model):
      found = sorted(os.listdir(path))[:10]
      raise FileNotFoundError(
          f"VOCABULARY={path!r} is a directory without {HF_SENTENCEPIECE_FILE}; expected a "
          f"Hugging Face T5 checkpoint directory (found {found}).")
    return model
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"VOCABULARY={path!r} does not exist; expected a SentencePiece .model file, a "
        f"Hugging Face T5 directory with {HF_SENTENCEPIECE_FILE}, or a gs:// path.")
  return path


def get_vocabulary(path: str = DEFAULT_VOCABULARY_PATH,
                   extra_ids: int = DEFAULT_EXTRA_IDS) -> seqio.SentencePieceVocabulary:
  """A seqio SentencePiece vocabulary; the model file is read on first use.

  Args:
    path: see `resolve_vocabulary_path`. The default is T5's vocabulary on GCS,
      which is only fetched when text is first encoded or decoded.
    extra_ids: sentinel ids appended after the SentencePiece pieces (T5: 100).

  Returns:
    The vocabulary (inputs and targets of every task use the same one).

  Raises:
    FileNotFoundError: a local path with no SentencePiece model.
    ValueError: a negative `extra_ids`.
  """
  if not isinstance(extra_ids, int) or extra_ids < 0:
    raise ValueError(f"extra_ids={extra_ids!r}; expected an int >= 0 (T5: 100).")
  return seqio.SentencePieceVocabulary(resolve_vocabulary_path(path), extra_ids=extra_ids)


def train_sentencepiece(texts: Iterable[str], model_prefix: str, vocab_size: int, *,
                        model_type: str = "unigram", character_coverage: float = 1.0,
                        user_defined_symbols: Sequence[str] = ()) -> str:
  """Trains a SentencePiece model with T5's special ids; deterministic.

  One training thread and no input sampling or shuffling, so the same texts
  give the same pieces and scores (the file also records `model_prefix`).
  `hard_vocab_limit` is off: a small corpus may yield fewer than `vocab_size`
  pieces instead of failing.

  Args:
    texts: training sentences (one piece of text each; newlines are kept).
    model_prefix: output path without extension; `<prefix>.model` and
      `<prefix>.vocab` are written.
    vocab_size: the number of pieces to aim for (>= 4: pad, eos, unk + 1).
    model_type: "unigram" (T5's) or "bpe", "char", "word".
    character_coverage: fraction of characters covered (1.0 for small corpora).
    user_defined_symbols: pieces that are never split (e.g. a task word).

  Returns:
    The path of the `.model` file.

  Raises:
    ValueError: no text, or a vocab_size below 4.
  """
  import sentencepiece as spm  # pylint: disable=import-outside-toplevel
  texts = [t for t in texts if t and t.strip()]
  if not texts:
    raise ValueError(f"train_sentencepiece({model_prefix!r}): no non-empty text to train on.")
  if vocab_size < 4:
    raise ValueError(f"vocab_size={vocab_size}; expected >= 4 (pad, eos, unk and a piece).")
  directory = os.path.dirname(model_prefix)
  if directory:
    os.makedirs(directory, exist_ok=True)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_prefix=model_prefix, vocab_size=vocab_size,
      model_type=model_type, character_coverage=character_coverage,
      pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1,
      user_defined_symbols=list(user_defined_symbols), hard_vocab_limit=False,
      num_threads=1, shuffle_input_sentence=False, input_sentence_size=0,
      minloglevel=2)
  return f"{model_prefix}.model"


def checkpoint_vocabulary(path: str, checkpoint: str = "",
                          extra_ids: Optional[int] = None) -> seqio.SentencePieceVocabulary:
  """The vocabulary of a frozen model: `path`, else the `spiece.model` of its HF dir.

  Args:
    path: a SentencePiece `.model` or a directory holding `spiece.model`; empty
      takes `checkpoint` (a Hugging Face T5 directory).
    checkpoint: the frozen model's path, for the default and for messages.
    extra_ids: sentinel ids after the pieces; None: 100 for T5's and mT5's
      published vocabularies (32000 and 250000 pieces), else 0.

  Raises:
    ValueError: no vocabulary can be found (what to pass is named).
  """
  path = path or checkpoint
  if not path or ("://" in path and not path.endswith(".model")):
    raise ValueError(f"a vocabulary is needed for the frozen model {checkpoint!r}: pass its "
                     "SentencePiece .model (or an HF dir holding spiece.model).")
  try:
    model_file = resolve_vocabulary_path(path)
  except FileNotFoundError as e:
    raise ValueError(f"vocabulary: {e}") from e
  if extra_ids is None:
    pieces = seqio.SentencePieceVocabulary(model_file, extra_ids=0).vocab_size
    extra_ids = DEFAULT_EXTRA_IDS if pieces in (32000, 250000) else 0
  return seqio.SentencePieceVocabulary(model_file, extra_ids=extra_ids)
