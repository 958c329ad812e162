"""Builds the demo's frozen model: a tiny T5 1.1 trained on the synthetic tasks.

    python -m prompt_tuning.demo.pretrain --output_dir prompt_tuning/assets/demo_t5

Steps (reproducible for a seed): train a SentencePiece vocabulary on the
synthetic corpus; initialise a T5 1.1 of `DEMO_CONFIG`'s size; train every
parameter on the `demo_pretrain` mixture (every task introduced by its task
word) with the project's own `train_step`, the whole tree trainable; write a
Hugging Face T5 directory (`config.json`, `model.safetensors`, `spiece.model`)
that `prompt_tuning.checkpoints.load` reads like any pretrained checkpoint.
About 30 s on 2 CPU cores. The directory is written under a temporary name and
renamed, so an interrupted build never leaves a half-written model.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import jax
import numpy as np
import optax
import seqio
import sentencepiece as spm

from prompt_tuning import checkpoints, losses, tree
from prompt_tuning.data import inputs
from prompt_tuning.demo import synthetic
from prompt_tuning.demo import tasks as demo_tasks
from prompt_tuning.models import T5Config, Transformer, init_params
from prompt_tuning.train import step as step_lib
from prompt_tuning.train.state import TrainState

# T5 1.1 architecture at toy size. The vocabulary has 120 SentencePiece ids,
# padded to 128 rows as T5 pads 32100 to 32128.
DEMO_CONFIG = T5Config(vocab_size=128, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128,
                       num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0)
SENTENCEPIECE_SIZE = 120
FEATURE_LENGTHS = {"inputs": 16, "targets": 8}
VOCAB_FILE = "spiece.model"  # the name Hugging Face T5 directories use


def train_vocabulary(model_prefix: str) -> str:
  """Trains the demo's BPE SentencePiece model (pad 0, EOS 1, UNK 2, no BOS, as T5)."""
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(list(synthetic.corpus())), model_prefix=model_prefix,
      vocab_size=SENTENCEPIECE_SIZE, model_type="bpe", pad_id=0, eos_id=1, unk_id=2,
      bos_id=-1, character_coverage=1.0, num_threads=1, minloglevel=2)
  return model_prefix + ".model"


def token_accuracy(model_config, params, vocabulary, split="validation") -> dict:
  """Teacher-forced exact-match rate per task (every target token right)."""
  apply = jax.jit(Transformer(model_config).apply)
  out = {}
  for name in synthetic.TASKS:
    rows = list(synthetic.examples(name, split))
    enc = np.zeros((len(rows), FEATURE_LENGTHS["inputs"]), np.int32)
    tgt = np.zeros((len(rows), FEATURE_LENGTHS["targets"]), np.int32)
    for i, r in enumerate(rows):
      x = vocabulary.encode(r["inputs"]) + [1]
      y = vocabulary.encode(r["targets"]) + [1]
      enc[i, :len(x)], tgt[i, :len(y)] = x, y
    dec_in = np.concatenate([np.zeros_like(tgt[:, :1]), tgt[:, :-1]], axis=1)
    pred = np.asarray(apply({"params": params}, enc, dec_in, tgt)).argmax(-1)
    out[name] = float(np.mean(np.all((pred == tgt) | (tgt == 0), axis=1)))
  return out


def build(output_dir: str, steps: int = 1200, batch_size: int = 64, seed: int = 0,
          learning_rate: float = 3e-3, overwrite: bool = False, log=print) -> str:
  """Trains the demo model and writes it to `output_dir` (see module doc).

  Returns:
    `output_dir`.
  """
  if os.path.exists(output_dir) and not overwrite:
    raise FileExistsError(f"{output_dir} exists; pass overwrite=True (--overwrite) to "
                          "replace the demo model.")
  start = time.time()
  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".demo_t5_", dir=parent)
  try:
    vocab_path = train_vocabulary(os.path.join(tmp, "spiece"))
    os.rename(vocab_path, os.path.join(tmp, VOCAB_FILE))
    os.remove(os.path.join(tmp, "spiece.vocab"))
    vocabulary = seqio.SentencePieceVocabulary(os.path.join(tmp, VOCAB_FILE))
    demo_tasks.register_demo_tasks(vocabulary)

    params = init_params(DEMO_CONFIG, jax.random.PRNGKey(seed))
    trainable, frozen = tree.split(params, ".*")
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, steps // 10, steps,
                                                  learning_rate / 30)
    tx = optax.adamw(schedule, weight_decay=1e-4)
    state = TrainState.create(trainable, tx, jax.random.PRNGKey(seed))
    loss_cfg = losses.LossConfig(loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
    train_step = step_lib.jit_train_step(Transformer(DEMO_CONFIG), tx, loss_cfg)
    batches = inputs.train_batches(demo_tasks.PRETRAIN_MIXTURE, FEATURE_LENGTHS,
                                   batch_size, seed)
    for i in range(steps):
      state, metrics = train_step(state, frozen, next(batches))
      if i % 200 == 0 or i == steps - 1:
        log(f"pretrain step {i:5d}  loss {float(metrics['loss']):.4f}")
    params = tree.to_numpy(tree.merge(state.trainable, frozen))
    accuracy = token_accuracy(DEMO_CONFIG, params, vocabulary)
    log("validation exact match with task words: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in accuracy.items()))
    checkpoints.save_hf(DEMO_CONFIG, params, tmp, overwrite=True)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model is shared data
    for name in os.listdir(tmp):
      os.chmod(os.path.join(tmp, name), 0o644)
    if os.path.exists(output_dir):
      shutil.rmtree(output_dir)
    os.rename(tmp, output_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  log(f"demo model written to {output_dir} in {time.time() - start:.0f}s")
  return output_dir


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--steps", type=int, default=1200)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--overwrite", action="store_true")
  args = parser.parse_args(argv)
  build(args.output_dir, steps=args.steps, seed=args.seed, overwrite=args.overwrite)
  return 0


if __name__ == "__main__":
  sys.exit(main())
