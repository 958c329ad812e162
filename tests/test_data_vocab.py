"""Vocabulary: a SentencePiece model trained here, HF directories, lazy gs:// paths, errors."""
import os
import shutil

import pytest
import seqio

import data_fixtures as fx
from prompt_tuning.data import vocab


@pytest.fixture(scope="module")
def spm_path(tmp_path_factory):
  return fx.train_spm(str(tmp_path_factory.mktemp("spm")))


def test_training_is_deterministic_with_t5_special_ids(spm_path, tmp_path):
  import sentencepiece as spm  # pylint: disable=import-outside-toplevel
  again = fx.train_spm(str(tmp_path / "again"))
  a, b = (spm.SentencePieceProcessor(model_file=p) for p in (spm_path, again))
  pieces = lambda sp: [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
  assert pieces(a) == pieces(b) and a.get_piece_size() > 50
  v = vocab.get_vocabulary(spm_path, extra_ids=0)
  assert (v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2)
  assert a.bos_id() == -1 and a.id_to_piece(1) == "</s>" and a.id_to_piece(2) == "<unk>"


def test_round_trip_and_extra_ids(spm_path):
  v = vocab.get_vocabulary(spm_path, extra_ids=10)
  ids = v.encode("The train was late.")
  assert ids and all(3 <= i < v.vocab_size - 10 for i in ids)
  assert v.decode(ids) == "The train was late."
  assert v.vocab_size == vocab.get_vocabulary(spm_path, extra_ids=0).vocab_size + 10


def test_hf_directory_and_remote_paths(spm_path, tmp_path):
  hf_dir = tmp_path / "t5-hf"
  hf_dir.mkdir()
  shutil.copy(spm_path, hf_dir / vocab.HF_SENTENCEPIECE_FILE)
  v = vocab.get_vocabulary(str(hf_dir))
  assert v.sentencepiece_model_file == os.path.join(str(hf_dir), "spiece.model")
  assert v.decode(v.encode("is the sky blue")) == "is the sky blue"
  # construction reads nothing: no network needed for the default
  default = vocab.get_vocabulary()
  assert default.sentencepiece_model_file == vocab.DEFAULT_VOCABULARY_PATH
  assert isinstance(default, seqio.SentencePieceVocabulary) and default.extra_ids == 100


def test_missing_vocabularies_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"VOCABULARY='.*nope.model' does not exist"):
    vocab.get_vocabulary(str(tmp_path / "nope.model"))
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(FileNotFoundError, match=r"directory without spiece.model.*config.json"):
    vocab.get_vocabulary(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="expected a SentencePiece .model path"):
    vocab.get_vocabulary("")
  with pytest.raises(ValueError, match="extra_ids=-1"):
    vocab.get_vocabulary(vocab.DEFAULT_VOCABULARY_PATH, extra_ids=-1)
  with pytest.raises(ValueError, match="no non-empty text"):
    vocab.train_sentencepiece(["", "  "], str(tmp_path / "x"), 32)
