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


def test_a_vanishing_label_smoothing_is_the_plain_cross_entropy_as_t5x():
  """label_smoothing=1e-25 over V=4 gives each other token low = 1e-25 / 3, far
  below 1e-20: T5X's log(low + 1e-20) keeps the normalizing constant finite, so
  the loss is (to float32) the unsmoothed cross-entropy, not NaN."""
  logits = np.array([[[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -2.0]]], np.float32)  # [1, 2, 4]
  targets = np.array([[0, 2]], np.int32)
  weights = np.array([[1, 1]], np.float32)
  x = logits.astype(np.float64)
  log_probs = x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
  nll = -(log_probs[0, 0, 0] + log_probs[0, 1, 2])  # hand-picked target log-probs
  loss, _ = losses.cross_entropy(logits, targets, weights,
                                 losses.LossConfig(z_loss=0.0, label_smoothing=1e-25))
  assert np.isfinite(float(loss))
  np.testing.assert_allclose(float(loss), nll, rtol=1e-6)


@pytest.mark.parametrize("label_smoothing", [1.0, 1.5, -0.1])
def test_label_smoothing_outside_zero_to_one_is_refused(label_smoothing):
  """[0, 1): 1.0 would put no mass on the target (log 0 in the entropy term)."""
  with pytest.raises(ValueError, match=rf"label_smoothing={label_smoothing}; expected \[0, 1\)"):
    losses.LossConfig(label_smoothing=label_smoothing)


# Integer weights: every normaliser's factor by hand, and float32 out.
NW_WEIGHTS = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.int32)  # 4 real, 12 slots, B=3


@pytest.mark.parametrize("normalizer,want", [
    (None, NW_WEIGHTS * 1.0),                                # the sum: weights unchanged
    ("NUM_REAL_TARGET_TOKENS", NW_WEIGHTS / 4.0),            # 4 real tokens
    ("NUM_TOTAL_TARGET_TOKENS", NW_WEIGHTS / 12.0),          # B * T = 12
    # each row by its own real count (an all-padding row by 1, not 0), then by B = 3
    ("AVERAGE_PER_SEQUENCE", NW_WEIGHTS / np.array([[3.0], [1.0], [1.0]]) / 3.0),
    (8.0, NW_WEIGHTS / 8.0),
])
def test_normalized_weights_divide_integer_weights_by_each_factor_in_float32(normalizer, want):
  got = losses.normalized_weights(NW_WEIGHTS, losses.LossConfig(loss_normalizing_factor=normalizer))
  assert got.dtype == np.float32 and got.shape == (3, 4)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_num_real_target_tokens_of_a_one_token_batch_divides_by_one_and_of_none_by_nothing():
  cfg = losses.LossConfig(loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
  one = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
  np.testing.assert_allclose(np.asarray(losses.normalized_weights(one, cfg)), one, rtol=0)
  half = np.array([[0.5, 0.0, 0.0]], np.float32)  # fractional weights below 1: the floor is 1
  np.testing.assert_allclose(np.asarray(losses.normalized_weights(half, cfg)), half, rtol=0)
  none = np.zeros((2, 3), np.float32)  # all padding: zeros, not NaN
  np.testing.assert_array_equal(np.asarray(losses.normalized_weights(none, cfg)), none)


# A stand-in for the flax model: loss_fn's wiring (merged params, which batch array goes
# where, dropout flag and key, prompt ids, norm_weights) checked without compiling a model.
# The targets must reach the model: padding inside the targets is what it masks, which
# a batch padded only at the end cannot show (causal attention hides a suffix).
class _RecordingModel:
  """Records what `apply` receives (Transformer.__call__'s signature) and returns fixed logits."""

  def __init__(self, logits):
    self.logits, self.calls = logits, []

  def apply(self, variables, encoder_input_tokens, decoder_input_tokens,
            decoder_target_tokens=None, enable_dropout=False, prompt_ids=None, rngs=None):
    self.calls.append({"variables": variables, "encoder_input_tokens": encoder_input_tokens,
                       "decoder_input_tokens": decoder_input_tokens,
                       "decoder_target_tokens": decoder_target_tokens,
                       "enable_dropout": enable_dropout, "prompt_ids": prompt_ids,
                       "rngs": rngs})
    return self.logits


FAKE_LOGITS = np.array([[[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -2.0], [1.0, -1.0, 0.5, 0.0]],
                        [[0.3, 0.0, -0.5, 1.5], [2.0, 1.0, 0.0, 2.5], [0.0, 0.0, 0.0, 0.0]]],
                       np.float32)  # [B=2, T=3, V=4]
FAKE_BATCH = {"encoder_input_tokens": np.array([[5, 6, 7, 1], [8, 1, 0, 0]], np.int32),
              "decoder_input_tokens": np.array([[0, 2, 3], [0, 1, 0]], np.int32),
              "decoder_target_tokens": np.array([[2, 3, 1], [3, 1, 0]], np.int32),
              "decoder_loss_weights": np.array([[1, 1, 1], [1, 1, 0]], np.float32)}


def _numpy_token_nll(logits, targets):
  log_z = np.log(np.exp(logits).sum(-1))
  return log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0]  # [B, T]


def test_loss_fn_feeds_the_merged_params_and_each_batch_array_to_the_model():
  trainable = {"encoder": {"prompt": {"prompt": "P"}}}
  frozen = {"encoder": {"encoder_norm": {"scale": "S"}}, "decoder": {"kernel": "K"}}
  batch = dict(FAKE_BATCH, prompt_ids=np.array([1, 0], np.int32))
  model = _RecordingModel(FAKE_LOGITS)
  cfg = losses.LossConfig(z_loss=0.0)
  loss, metrics = losses.loss_fn(trainable, frozen, batch, None, model=model, loss_cfg=cfg)
  (call,) = model.calls
  assert call["variables"] == {"params": {"encoder": {"prompt": {"prompt": "P"},
                                                      "encoder_norm": {"scale": "S"}},
                                          "decoder": {"kernel": "K"}}}
  for name in ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
               "prompt_ids"):
    np.testing.assert_array_equal(call[name], batch[name], err_msg=name)
  assert call["enable_dropout"] is False and call["rngs"] is None  # no key: deterministic
  want = (_numpy_token_nll(FAKE_LOGITS, batch["decoder_target_tokens"])
          * batch["decoder_loss_weights"]).sum()
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_allclose(metrics["cross_entropy"], want, rtol=1e-6)
  assert float(metrics["num_tokens"]) == 5.0


def test_loss_fn_with_a_key_turns_dropout_on_and_passes_the_key_as_the_dropout_rng():
  model = _RecordingModel(FAKE_LOGITS)
  key = jax.random.PRNGKey(3)
  losses.loss_fn({"a": 1}, {"b": 2}, FAKE_BATCH, key, model=model,
                 loss_cfg=losses.LossConfig())
  (call,) = model.calls
  assert call["enable_dropout"] is True
  assert list(call["rngs"]) == ["dropout"]
  np.testing.assert_array_equal(call["rngs"]["dropout"], key)
  assert call["prompt_ids"] is None  # a batch without prompt_ids: no bank


def test_loss_fn_weights_the_tokens_by_the_given_norm_weights():
  """Microbatching: the slice's rows of the whole batch's normalized weights are used as given."""
  norm = np.array([[0.5, 0.25, 0.0], [2.0, 0.0, 0.0]], np.float32)
  cfg = losses.LossConfig(z_loss=0.0, loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
  loss, _ = losses.loss_fn({}, {"b": 2}, FAKE_BATCH, None, model=_RecordingModel(FAKE_LOGITS),
                           loss_cfg=cfg, norm_weights=norm)
  want = (_numpy_token_nll(FAKE_LOGITS, FAKE_BATCH["decoder_target_tokens"]) * norm).sum()
  np.testing.assert_allclose(loss, want, rtol=1e-6)
