"""mT5: a Hugging Face mT5 loads and matches transformers; multilingual vocabularies work.

The reference is `transformers.MT5ForConditionalGeneration` with random
weights, in a small config written here; its float64 logits are the truth,
and ours must be about as close to them as transformers' own float32 logits are.
"""
import json
import os

import jax
import numpy as np
import pytest
import seqio

from references import randomize_hf_weights, reference_library
import data_fixtures as fx
from prompt_tuning import checkpoints, tree
from prompt_tuning.data import tasks, verbalizers, vocab as vocab_lib
from prompt_tuning.models import Transformer, get_config, sizes
from prompt_tuning.prompts import initializers

torch = reference_library("torch")
transformers = reference_library("transformers")

# mT5's shape (gated GELU, untied lm_head, config.json model_type "mt5") at toy size;
# 3 decoder vs 2 encoder layers so a swapped count cannot pass.
HF_CONFIG = dict(vocab_size=96, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                 num_decoder_layers=3, num_heads=2, relative_attention_num_buckets=16,
                 relative_attention_max_distance=32, dropout_rate=0.0,
                 tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0,
                 eos_token_id=1)


@pytest.fixture(scope="module")
def mt5_dir(tmp_path_factory):
  """An mT5 directory as google/mt5-* ships them: untied lm_head, tie_word_embeddings false."""
  torch.manual_seed(0)
  model = transformers.MT5ForConditionalGeneration(transformers.MT5Config(**HF_CONFIG))
  randomize_hf_weights(model, untie_lm_head=True)  # mT5's lm_head is its own matrix
  directory = str(tmp_path_factory.mktemp("mt5"))
  model.eval().save_pretrained(directory)
  path = os.path.join(directory, "config.json")
  with open(path) as f:
    config = json.load(f)
  with open(path, "w") as f:
    json.dump(dict(config, tie_word_embeddings=False), f)
  return directory


def _batch():
  encoder = np.array([[5, 6, 7, 8, 9, 1, 0], [10, 90, 1, 0, 0, 0, 0]], np.int64)
  targets = np.array([[3, 4, 95, 1], [6, 1, 0, 0]], np.int64)
  decoder = np.concatenate([np.zeros((2, 1), np.int64), targets[:, :-1]], axis=1)
  return encoder, decoder, targets


def test_an_hf_mt5_directory_loads_as_mt5(mt5_dir):
  with open(os.path.join(mt5_dir, "config.json")) as f:
    assert json.load(f)["model_type"] == "mt5"
  config, params = checkpoints.load(mt5_dir)
  assert config == get_config("tiny").replace(
      vocab_size=96, num_decoder_layers=3, relative_attention_num_buckets=16,
      relative_attention_max_distance=32, dropout_rate=0.0)
  assert config.mlp_activations == ("gelu", "linear") and not config.logits_via_embedding
  flat = tree.flatten(params)
  assert not np.array_equal(flat["decoder/logits_dense/kernel"].T,
                            flat["token_embedder/embedding"])  # the untied lm_head was read


def test_mt5_logits_are_as_close_to_float64_as_transformers_float32(mt5_dir):
  encoder, decoder, targets = _batch()
  hf = transformers.MT5ForConditionalGeneration.from_pretrained(mt5_dir).eval()
  assert hf.lm_head.weight is not hf.shared.weight
  kwargs = dict(input_ids=torch.tensor(encoder), attention_mask=torch.tensor(encoder > 0),
                decoder_input_ids=torch.tensor(decoder))
  with torch.no_grad():
    hf32 = hf(**kwargs).logits.numpy().astype(np.float64)
    hf64 = hf.double()(**kwargs).logits.numpy()
  config, params = checkpoints.load(mt5_dir)
  ours = np.asarray(jax.jit(Transformer(config).apply)(
      {"params": params}, encoder.astype(np.int32), decoder.astype(np.int32),
      targets.astype(np.int32)), np.float64)
  real = targets > 0
  ours_err = np.abs(ours - hf64)[real].max()
  hf_err = np.abs(hf32 - hf64)[real].max()
  assert np.abs(hf64).max() > 1.0  # logits of a real size, not all near 0
  # float32 rounding in another order, with XLA's CPU kernels (its tanh and exp differ by
  # CPU): within a few times transformers' own error. Measured: ours 3.9e-6 to 4.5e-6 on an
  # Intel Xeon, transformers 1.7e-6; GELU's exact form instead of "gelu_new" gives 1.4e-3.
  print(f"mt5 max |logit - float64|: ours {ours_err:.3g}, transformers float32 {hf_err:.3g}")
  assert ours_err <= 4 * hf_err + 2e-6, (ours_err, hf_err)


def test_the_mt5_size_files_have_mt5s_vocabulary_and_shapes():
  base = get_config("base", family="mt5")
  assert base.vocab_size == 250112 and base.emb_dim == 768 and base.mlp_dim == 2048
  assert base.mlp_activations == ("gelu", "linear")
  assert sizes.release("mt5", "xl") == {
      "hf_id": "google/mt5-xl",
      "t5x_path": "gs://t5-data/pretrained_models/t5x/mt5_xl/checkpoint_1000000",
      "vocabulary": "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"}


# ----------------------------------------------------------------------------
# A multilingual SentencePiece vocabulary, with mT5's 100 extra ids.
# ----------------------------------------------------------------------------

MULTILINGUAL = [
    "Der Himmel ist heute blau.", "Небо сегодня голубое.", "आज आसमान नीला है।",
    "今天天空是蓝色的。", "El cielo está azul hoy.", "Ο ουρανός είναι μπλε σήμερα.",
    "да нет может быть", "हाँ नहीं शायद", "是 否 也许", "ja nein vielleicht",
    "premise: hypothesis: sentence: entailment contradiction neutral positive negative",
] * 6
LABELS = ["नहीं", "否", "нет"]


@pytest.fixture(scope="module")
def mt5_style_vocab(tmp_path_factory):
  path = vocab_lib.train_sentencepiece(
      MULTILINGUAL, str(tmp_path_factory.mktemp("spm") / "mc4_like"), 150)
  return vocab_lib.get_vocabulary(path, extra_ids=100)


def test_class_label_init_with_a_multilingual_vocabulary(mt5_style_vocab):
  vocab = mt5_style_vocab
  assert vocab.vocab_size > 100  # pieces + mT5's 100 extra ids
  rows = vocab.vocab_size + 12   # padded like mT5's embedding table
  table = np.random.default_rng(0).normal(size=(rows, 16)).astype(np.float32)
  pieces = {label: vocab.encode(label) for label in LABELS}
  assert max(len(ids) for ids in pieces.values()) > 1  # a multi-piece label is in the test
  assert all(vocab.decode(ids) == label for label, ids in pieces.items())
  init = initializers.class_labels(LABELS, vocab, fill=initializers.sampled_vocab(50))
  prompt = init(jax.random.PRNGKey(0), (5, 16), table)
  for i, label in enumerate(LABELS):
    np.testing.assert_allclose(prompt[i], table[pieces[label]].mean(axis=0), rtol=1e-6)
  # Sentinels sit after the pieces, as in mT5: <extra_id_0> is the last piece id + 100.
  assert vocab.encode("<extra_id_0>") == [vocab.vocab_size - 1]


def test_tasks_register_and_tokenize_with_a_multilingual_vocabulary(mt5_style_vocab):
  tasks.register_tasks(mt5_style_vocab)
  try:
    raw = dict(fx.EXAMPLES["glue_sst2_v200"][1], sentence="Небо сегодня голубое. 今天天空是蓝色的。")
    with fx.serve({("glue/sst2", "validation"): [raw]}):
      ds = seqio.get_dataset("taskless_glue_sst2_v200", {"inputs": 64, "targets": 32},
                             seqio.EncDecFeatureConverter(pack=False), "validation",
                             shuffle=False)
      batch = next(ds.as_numpy_iterator())
    words = verbalizers.get_verbalizer("glue_sst2").labels
    target = mt5_style_vocab.decode([int(i) for i in batch["decoder_target_tokens"]])
    assert target == words[raw["label"]]
    inputs = [int(i) for i in batch["encoder_input_tokens"]]
    assert mt5_style_vocab.decode(inputs) == "sentence: " + raw["sentence"]  # taskless T5 text
    assert vocab_lib.UNK_ID not in inputs
  finally:
    fx.register_bytes()
