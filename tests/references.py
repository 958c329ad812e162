"""The independent reference libraries (torch, transformers, peft) the parity tests need.

Off CI a missing one skips the tests that need it, so a quick local run without
the test extra still works. Under CI (`CI` set to anything but "", "0" or
"false") a missing reference is a failure, never a silent skip: the
independent checks must run.
"""
import importlib
import os

import pytest


def in_ci() -> bool:
  return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def reference_library(name: str):
  """Imports `name`; skips the module's tests if it is missing, unless under CI."""
  if in_ci():
    try:
      return importlib.import_module(name)
    except ImportError as e:
      raise ImportError(f"CI is set but the reference library {name!r} is missing ({e}); "
                        "install the test extra: pip install -e '.[test]'.") from e
  return pytest.importorskip(name)


def randomize_hf_weights(model, untie_lm_head: bool) -> None:
  """Every weight of a transformers T5/mT5 model random, in place (norm scales too).

  Norm scales U[0.5, 1.5] (ones would hide a swapped norm); the rest N(0, 0.25),
  which keeps logits O(1), so a 1e-4 bound is tight, not rounding luck.
  transformers 5 ties lm_head to shared at construction: `untie_lm_head` gives
  it its own matrix, as T5 1.1 and mT5 have.
  """
  import torch  # pylint: disable=import-outside-toplevel
  if untie_lm_head:
    model.lm_head.weight = torch.nn.Parameter(torch.empty_like(model.shared.weight))
  with torch.no_grad():
    for name, weight in model.named_parameters():
      if "layer_norm" in name:
        weight.uniform_(0.5, 1.5)
      else:
        weight.normal_(0.0, 0.25)
  assert (model.lm_head.weight is model.shared.weight) == (not untie_lm_head)


def target_log_likelihoods(hf_model, tokens, targets):
  """[B] sums of log p(target) from a transformers (or PEFT) T5, teacher forced.

  Args:
    hf_model: a seq2seq model taking input_ids, attention_mask, decoder_input_ids.
    tokens: [B, L] int encoder inputs (0 pads).
    targets: [B, T] int targets (0 pads; padded positions count nothing).
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  tokens, targets = np.asarray(tokens), np.asarray(targets)
  decoder_inputs = np.pad(targets[:, :-1], ((0, 0), (1, 0)))
  with torch.no_grad():
    logits = hf_model(input_ids=torch.tensor(tokens, dtype=torch.long),
                      attention_mask=torch.tensor(tokens > 0, dtype=torch.long),
                      decoder_input_ids=torch.tensor(decoder_inputs, dtype=torch.long)
                      ).logits.double()
  log_probs = torch.log_softmax(logits, -1).numpy()
  picked = np.take_along_axis(log_probs, targets[..., None].astype(np.int64), -1)[..., 0]
  return (picked * (targets > 0)).sum(-1)
