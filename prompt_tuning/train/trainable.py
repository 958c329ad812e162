"""Which parameters train (TRAINABLE_REGEX) and which stay frozen.

Paths are the "/"-joined keys of the nested param dict, as T5X names them
(`encoder/layers_0/attention/query/kernel`); the prompts are at
`encoder/prompt/prompt` and `decoder/prompt/prompt`. A regex is matched
against the whole path (`re.fullmatch`), so `encoder/prompt/prompt` matches
the prompt and nothing else, and `.*_norm/scale` matches every layer-norm scale.
"""
from typing import Any, Mapping, Optional

from prompt_tuning import tree
from prompt_tuning.prompts.spec import PROMPT_PATHS, PROMPTS_REGEX

Params = Mapping[str, Any]

# Default TRAINABLE_REGEX: the soft prompts only, i.e. the encoder prompt and the
# decoder prompt when the model has one: "encoder/prompt/prompt|decoder/prompt/prompt".
DEFAULT_TRAINABLE_REGEX = PROMPTS_REGEX


def trainable_paths(params: Params, regex: Optional[str] = None) -> list[str]:
  """Sorted paths that `regex` (default: the prompts only) fully matches."""
  chosen, _ = tree.split(params, DEFAULT_TRAINABLE_REGEX if regex is None else regex)
  return sorted(tree.flatten(chosen))


def split(params: Params, regex: Optional[str] = None) -> tuple[dict, dict]:
  """Splits params into (trainable, frozen) nested dicts by TRAINABLE_REGEX.

  Args:
    params: the model's nested param dict.
    regex: TRAINABLE_REGEX, matched against whole "/"-joined paths; None means
      the prompts only (encoder, and decoder if present).

  Returns:
    (trainable, frozen): two nested dicts whose union is `params`.

  Raises:
    ValueError: the regex matches no parameter (nothing would train).
  """
  trainable, frozen = tree.split(params, DEFAULT_TRAINABLE_REGEX if regex is None else regex)
  if not trainable:
    flat = tree.flatten(params)
    raise ValueError(
        f"TRAINABLE_REGEX={regex or DEFAULT_TRAINABLE_REGEX!r} matches no parameter, so "
        f"nothing would train. It is matched with re.fullmatch against paths such as "
        f"{sorted(flat)[:4]} (of {len(flat)}); is PROMPT_LENGTH or DECODER_PROMPT_LENGTH "
        "> 0?")
  return trainable, frozen


def top_layers_regex(params: Params, top: int) -> str:
  """TRAINABLE_REGEX for "the top `top` layers of each stack only" (the lower ones frozen).

  The transfer-learning recipe of freezing the lower layers: the last `top`
  `layers_{i}` of the encoder and of the decoder train, with the final layer
  norms and the output head (`decoder/logits_dense`, when the model has one);
  the embeddings and the layers below stay frozen. Bind it unevaluated
  (`TRAINABLE_REGEX = @trainable.top_layers_regex`); `loop.train` calls it on
  the loaded param tree.

  Args:
    params: the model's param tree (only its paths are read).
    top: layers per stack to train, 1 <= top <= the stack's depth.

  Raises:
    ValueError: `top` out of range for a stack, or stacked (SCAN_LAYERS)
      params, whose layers share one array per weight.
  """
  flat = tree.flatten(params)
  parts = []
  for stack in ("encoder", "decoder"):
    if any(p.startswith(f"{stack}/layers/") for p in flat):
      raise ValueError(f"TOP_LAYERS={top} with SCAN_LAYERS=True: {stack}'s layers are one "
                       "stacked array per weight, so some layers cannot train alone; "
                       "expected SCAN_LAYERS=False for model_tuning_top.")
    depth = len({p.split("/")[1] for p in flat if p.startswith(f"{stack}/layers_")})
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= depth:
      raise ValueError(f"TOP_LAYERS={top!r}; expected an int in [1, {depth}] ({stack} has "
                       f"{depth} layers).")
    layers = "|".join(str(i) for i in range(depth - top, depth))
    parts.append(f"{stack}/(layers_({layers})|{stack}_norm)/.*")
  parts.append("decoder/logits_dense/.*")
  return "|".join(parts)


def check_adapters(params: Params, regex: Optional[str], adapters) -> None:
  """Refuses a TRAINABLE_REGEX that contradicts the model's methods.

  A method trains exactly its own params (and, if asked, soft prompts): the
  regex must match every one of them, and no pretrained weight.

  Args:
    params: the full param tree (frozen weights, prompts and method params).
    regex: TRAINABLE_REGEX (None: the methods' default, which always fits).
    adapters: the model's `prompt_tuning.models.adapters.AdapterSpec`.

  Raises:
    ValueError: naming the regex, the methods and the params it gets wrong.
  """
  if regex is None:
    return
  flat = tree.flatten(params)
  chosen = set(trainable_paths(params, regex))
  methods = ", ".join(adapters.methods)
  left = sorted(p for p in flat if adapters.method_of(p) and p not in chosen)
  if left:
    raise ValueError(
        f"TRAINABLE_REGEX={regex!r} leaves {len(left)} params of the methods ({methods}) "
        f"frozen, e.g. {left[:3]}; expected it to match all of them (None trains exactly "
        f"{adapters.trainable_regex()!r} and the prompts).")
  pretrained = sorted(p for p in chosen if not adapters.method_of(p) and p not in PROMPT_PATHS)
  if pretrained:
    raise ValueError(
        f"TRAINABLE_REGEX={regex!r} also trains {len(pretrained)} pretrained weights, e.g. "
        f"{pretrained[:3]}, which the methods ({methods}) keep frozen; expected it to match "
        "only the methods' params and soft prompts (None: the methods' default).")
