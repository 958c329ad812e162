"""T5X's loss, checked against numpy written out by hand, on batches of 1 and 2."""
import jax
import numpy as np
import pytest

from prompt_tuning import losses

LOGITS = np.array([[[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -2.0], [1.0, 1.0, 1.0, 1.0]]],
                  np.float32)  # [B=1, T=3, V=4]
TARGETS = np.array([[0, 2, 1]], np.int32)
WEIGHTS = np.array([[1, 1, 0]], np.float32)  # the last position is padding


def _log_softmax(x):
  z = np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
  return x - z, z[..., 0]


def test_cross_entropy_sums_tokens_with_z_loss_as_t5x():
  lp, log_z = _log_softmax(LOGITS)
  nll = -lp[0, [0, 1], TARGETS[0, :2]]
  want_z = 1e-4 * np.sum(log_z[0, :2] ** 2)
  loss, m = jax.jit(losses.cross_entropy, static_argnums=3)(
      LOGITS, TARGETS, WEIGHTS, losses.LossConfig(z_loss=1e-4))
  np.testing.assert_allclose(loss, nll.sum() + want_z, rtol=1e-6)
  np.testing.assert_allclose(m["z_loss"], want_z, rtol=1e-6)
  np.testing.assert_allclose(m["cross_entropy"], nll.sum(), rtol=1e-6)
  assert float(m["num_tokens"]) == 2.0 and float(m["accuracy"]) == 2.0
  per_token, _ = losses.cross_entropy(
      LOGITS, TARGETS, WEIGHTS, losses.LossConfig(0.0, 0.0, "NUM_REAL_TARGET_TOKENS"))
  np.testing.assert_allclose(per_token, nll.mean(), rtol=1e-6)
  per_seq, _ = losses.cross_entropy(
      LOGITS, TARGETS, WEIGHTS, losses.LossConfig(0.0, 0.0, "AVERAGE_PER_SEQUENCE"))
  np.testing.assert_allclose(per_seq, nll.mean(), rtol=1e-6)
  constant, _ = losses.cross_entropy(LOGITS, TARGETS, WEIGHTS,
                                       losses.LossConfig(0.0, 0.0, 4.0))
  np.testing.assert_allclose(constant, nll.sum() / 4.0, rtol=1e-6)


def test_label_smoothing_is_soft_target_cross_entropy_minus_its_entropy():
  ls, v = 0.1, 4
  lp, _ = _log_softmax(LOGITS)
  soft = np.full((1, 3, v), ls / (v - 1))
  soft[0, np.arange(3), TARGETS[0]] = 1 - ls
  entropy = -np.sum(soft[0, 0] * np.log(soft[0, 0]))
  want = np.sum((-(soft * lp).sum(-1) - entropy) * WEIGHTS)
  loss, _ = losses.cross_entropy(LOGITS, TARGETS, WEIGHTS,
                                   losses.LossConfig(z_loss=0.0, label_smoothing=ls))
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  with pytest.raises(ValueError, match="loss_normalizing_factor='TOKENS'"):
    losses.LossConfig(loss_normalizing_factor="TOKENS")


# Two sequences of different lengths: 3 real targets and 1 real target. With
# B > 1 and unequal lengths every normaliser gives a different number.
LOGITS2 = np.array([[[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -2.0], [1.0, -1.0, 0.5, 0.0]],
                    [[0.3, 0.0, -0.5, 1.5], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]],
                   np.float32)  # [B=2, T=3, V=4]
TARGETS2 = np.array([[0, 2, 1], [3, 0, 0]], np.int32)
WEIGHTS2 = np.array([[1, 1, 1], [1, 0, 0]], np.float32)


def _token_nll():
  lp, _ = _log_softmax(LOGITS2)
  return -np.take_along_axis(lp, TARGETS2[..., None], axis=-1)[..., 0]  # [B, T]


@pytest.mark.parametrize("normalizer", [None, "NUM_REAL_TARGET_TOKENS",
                                        "NUM_TOTAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE", 2.5])
def test_every_normalizer_on_two_sequences_of_different_lengths(normalizer):
  nll = _token_nll()
  real = nll * WEIGHTS2
  want = {
      None: real.sum(),                                     # T5X's default: the sum
      "NUM_REAL_TARGET_TOKENS": real.sum() / 4.0,           # 4 real tokens
      "NUM_TOTAL_TARGET_TOKENS": real.sum() / 6.0,          # B * T = 6 positions
      # the mean over the 2 examples of each example's mean over its real tokens
      "AVERAGE_PER_SEQUENCE": (real[0].sum() / 3.0 + real[1].sum() / 1.0) / 2.0,
      2.5: real.sum() / 2.5,
  }[normalizer]
  loss, metrics = jax.jit(losses.cross_entropy, static_argnums=3)(
      LOGITS2, TARGETS2, WEIGHTS2, losses.LossConfig(0.0, 0.0, normalizer))
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_allclose(metrics["cross_entropy"], real.sum(), rtol=1e-6)
  assert float(metrics["num_tokens"]) == 4.0


def test_the_normalizers_disagree_here_so_each_is_tested():
  values = [float(losses.cross_entropy(LOGITS2, TARGETS2, WEIGHTS2,
                                       losses.LossConfig(0.0, 0.0, n))[0])
            for n in ("NUM_REAL_TARGET_TOKENS", "NUM_TOTAL_TARGET_TOKENS",
                      "AVERAGE_PER_SEQUENCE")]
  assert len({round(v, 5) for v in values}) == 3, values


def test_z_loss_is_normalised_like_the_loss():
  _, log_z = _log_softmax(LOGITS2)
  z = 1e-4 * log_z ** 2 * WEIGHTS2
  per_seq = (z[0].sum() / 3.0 + z[1].sum() / 1.0) / 2.0
  loss, metrics = losses.cross_entropy(LOGITS2, TARGETS2, WEIGHTS2,
                                       losses.LossConfig(1e-4, 0.0, "AVERAGE_PER_SEQUENCE"))
  np.testing.assert_allclose(metrics["z_loss"], per_seq, rtol=1e-5)
  nll = (_token_nll() * WEIGHTS2)
  np.testing.assert_allclose(loss, (nll[0].sum() / 3 + nll[1].sum()) / 2 + per_seq, rtol=1e-6)


def test_accuracy_counts_argmax_hits_on_real_tokens_only():
  _, metrics = losses.cross_entropy(LOGITS2, TARGETS2, WEIGHTS2, losses.LossConfig())
  hits = (LOGITS2.argmax(-1) == TARGETS2) * WEIGHTS2
  assert float(metrics["accuracy"]) == hits.sum()


def test_eval_step_is_the_loss_without_dropout_against_numpy():
  from prompt_tuning import tree  # pylint: disable=import-outside-toplevel
  from prompt_tuning.models import Transformer, get_config  # pylint: disable=import-outside-toplevel
  import model_fixtures  # pylint: disable=import-outside-toplevel
  model = Transformer(get_config("tiny", dropout_rate=0.5))  # dropout on would change it
  params = model_fixtures.random_params(model, seed=3)
  batch = {"encoder_input_tokens": np.array([[5, 6, 1], [7, 1, 0]], np.int32),
           "decoder_input_tokens": np.array([[0, 9, 4], [0, 8, 0]], np.int32),
           "decoder_target_tokens": np.array([[9, 4, 1], [8, 1, 0]], np.int32),
           "decoder_loss_weights": np.array([[1, 1, 1], [1, 1, 0]], np.float32)}
  logits = np.asarray(model.apply({"params": params}, batch["encoder_input_tokens"],
                                  batch["decoder_input_tokens"],
                                  batch["decoder_target_tokens"], enable_dropout=False),
                      np.float64)
  lp, log_z = _log_softmax(logits)
  real = batch["decoder_loss_weights"] > 0
  nll = -np.take_along_axis(lp, batch["decoder_target_tokens"][..., None], -1)[..., 0]
  want_ce, want_z = nll[real].sum(), 1e-4 * (log_z[real] ** 2).sum()
  trainable, frozen = tree.split(params, r"encoder/encoder_norm/scale")
  step = losses.jit_eval_step(model, losses.LossConfig(z_loss=1e-4))
  for _ in range(2):  # deterministic: no dropout key
    got = step(trainable, frozen, batch)
    np.testing.assert_allclose(got["loss"], want_ce + want_z, rtol=1e-5)
    np.testing.assert_allclose(got["cross_entropy"], want_ce, rtol=1e-5)
    assert float(got["num_tokens"]) == 5.0
