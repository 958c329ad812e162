"""Optimizers as plain optax builders (gin binds their arguments, never imports here).

`paper_adafactor()` is Lester et al. (2021)'s setting, as the reference
google-research/prompt-tuning configures T5X's Adafactor: constant learning
rate 0.3, second-moment decay exponent 0.8, no parameter scaling, weight decay
1e-5 (decoupled: p <- (1 - 1e-5) p - lr * u), update clipping at RMS 1.0, and
the prompt's second moment never factored. Any other optax optimizer and
schedule can be bound from gin instead (see configs/runs/adamw_warmup.gin).

The step offset. T5X restores the pretrained checkpoint's global step (1.1M for
the LM-adapted T5 1.1 checkpoints the paper tunes) and Adafactor's decay
beta2(t) = 1 - (t + 1)^-0.8 counts from it, so the reference runs start with
beta2 = 1 - 1.1e6^-0.8 ~ 0.999986 and from-zero second moments: the
accumulator stays far below g^2 for the whole run and every update is clipped
to RMS 1, i.e. lr-sized normalised steps. A fresh optimizer (offset 0) starts
at beta2 = 0 and behaves like RMSProp. `step_offset` is how many steps the
decay schedule has already taken: 0 here (plain Adafactor); the paper's run
config sets STEP_OFFSET = 1_100_000 to reproduce the reference numerics.
"""
import re
from typing import Optional, Union

import optax

from prompt_tuning import tree
from prompt_tuning.prompts.spec import PROMPTS_REGEX

ScalarOrSchedule = Union[float, optax.Schedule]


def paper_adafactor(learning_rate: ScalarOrSchedule = 0.3, decay_rate: float = 0.8,
                    step_offset: int = 0, clipping_threshold: Optional[float] = 1.0,
                    weight_decay_rate: Optional[float] = 1e-5,
                    multiply_by_parameter_scale: bool = False, factored: bool = False,
                    unfactored_regex: str = PROMPTS_REGEX,
                    epsilon: float = 1e-30) -> optax.GradientTransformation:
  """Adafactor with the paper's prompt-tuning hyperparameters.

  Args:
    learning_rate: constant 0.3 (paper) or an optax schedule.
    decay_rate: exponent of beta2(t) = 1 - (t + 1)^-decay_rate.
    step_offset: steps the beta2 schedule has already taken (see module doc;
      the paper's runs continue the pretrained 1.1M steps).
    clipping_threshold: clip each param's update to this RMS (T5X: 1.0).
    weight_decay_rate: decoupled decay per step, not scaled by the lr (T5X).
    multiply_by_parameter_scale: scale the lr by each param's RMS (T5X's
      default for weights; off for prompts in the paper).
    factored: factor the second moment of matrices >= 128 x 128 (matters only
      when TRAINABLE_REGEX unfreezes weight matrices). Params whose path fully
      matches `unfactored_regex` (the prompt) are never factored, as the
      reference's factor rules leave the prompt axes unfactored.
    unfactored_regex: see `factored`.
    epsilon: added to g^2 (T5X's epsilon1).
  """
  def make(factor: bool) -> optax.GradientTransformation:
    # optax subtracts decay_offset from the count: a negative offset continues
    # a schedule that has already run `step_offset` steps.
    return optax.adafactor(
        learning_rate=learning_rate, decay_rate=decay_rate,
        decay_offset=-int(step_offset), multiply_by_parameter_scale=multiply_by_parameter_scale,
        clipping_threshold=clipping_threshold, weight_decay_rate=weight_decay_rate,
        eps=epsilon, factored=factor)

  if not factored:
    return make(False)
  pattern = re.compile(unfactored_regex)

  def labels(params):
    flat = tree.flatten(params)
    return tree.unflatten(
        {p: "unfactored" if pattern.fullmatch(p) else "factored" for p in flat})
  return optax.multi_transform({"unfactored": make(False), "factored": make(True)},
                               labels)

