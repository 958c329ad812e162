"""Parameter-efficient methods on the frozen T5: what each adds, where it lives, what trains.

`T5Config` is the frozen architecture only. A method is described by an
`AdapterSpec` given to the `Transformer` beside its prompt specs:

  Transformer(config, encoder_prompt=..., adapters=AdapterSpec(lora=LoraSpec(rank=8)))

  LoRA (Hu et al. 2021)     W + (alpha / r) A B on chosen projections, B = 0 at init
  IA3 (Liu et al. 2022)     learned vectors scaling keys, values and the MLP's inner
                            activation (the input of wo), ones at init
  prefix (Li & Liang 2021)  P learned keys/values in front of every attention layer's,
                            trained through an MLP and folded away for inference
  deep prompts (P-tuning v2, the reference's extended/train/per_layer.py)  a prompt at
                            every encoder layer's input; layer 0's is the encoder prompt

Methods combine (e.g. LoRA and IA3 together). Param paths, layer by layer (with
`T5Config.scan_layers`, `layers_{i}` is one `layers` and the layer axis is axis 1,
`scan.SCAN_AXIS`); `{attention}` is `attention` in the encoder, `self_attention` and
`encoder_decoder_attention` in the decoder:

  {stack}/layers_{i}/{attention}/{query,key,value,out}/lora_{a,b}   a [d_in, r], b [r, d_out]
  {stack}/layers_{i}/mlp/{wi | wi_0, wi_1, wo}/lora_{a,b}          (the kernel's in/out axes
                                                                   and "lora_rank")
  {stack}/layers_{i}/{attention}/ia3_{key,value}   [N * K]  ("joined_kv",)
  {stack}/layers_{i}/mlp/ia3_hidden                [F]      ("mlp",)
  {stack}/layers_{i}/{attention}/prefix_{key,value}  [P, N * K]  ("prefix", "joined_kv"),
                                                   the folded (inference) prefix
  {stack}/prefix/{attention}/embedding             [P, D]   ("prefix", "prefix_embed")
  {stack}/prefix/{attention}/wi/{kernel, bias}     [D, H], [H]  ("prefix_embed", "prefix_hidden")
  {stack}/prefix/{attention}/wo/{kernel, bias}     [H, L * 2 * N * K]  ("prefix_hidden",
                                                   "prefix_out"): the reparameterisation
  encoder/deep_prompt/prompt                       [L_enc - 1, P, D] ("prompt_layers",
                                                   "prompt", "prompt_embed"); a bank of K
                                                   encoder prompts makes it [K, L_enc - 1, P, D]

None of these exists in a pretrained checkpoint; `adapter_params.init_adapter_params`
makes them for a frozen tree. New logical axis names (all meant to stay replicated):
`lora_rank`, `prefix`, `prefix_embed`, `prefix_hidden`, `prefix_out`, `prompt_layers`.
"""
import dataclasses
import difflib
import re
from typing import Optional, Sequence

from prompt_tuning.models.config import T5Config
from prompt_tuning.prompts import spec as spec_lib

LORA, IA3, PREFIX, DEEP_PROMPTS = "lora", "ia3", "prefix", "deep_prompts"
METHODS = (LORA, IA3, PREFIX, DEEP_PROMPTS)

# The attention sub-layers of each stack, by module name.
ATTENTION_BLOCKS = {"encoder": ("attention",),
                    "decoder": ("self_attention", "encoder_decoder_attention")}
ATTENTION_PROJECTIONS = ("query", "key", "value", "out")
MLP_PROJECTIONS = ("wi", "wi_0", "wi_1", "wo")
LORA_TARGETS = ATTENTION_PROJECTIONS + MLP_PROJECTIONS

# Logical axis names of the new parameters' own dimensions.
LORA_RANK_AXIS = "lora_rank"
PREFIX_AXIS, PREFIX_EMBED_AXIS = "prefix", "prefix_embed"
PREFIX_HIDDEN_AXIS, PREFIX_OUT_AXIS = "prefix_hidden", "prefix_out"
PROMPT_LAYERS_AXIS = "prompt_layers"
NEW_AXES = (LORA_RANK_AXIS, PREFIX_AXIS, PREFIX_EMBED_AXIS, PREFIX_HIDDEN_AXIS,
            PREFIX_OUT_AXIS, PROMPT_LAYERS_AXIS)

DEEP_PROMPT_PATH = "encoder/deep_prompt/prompt"
# Each method's params, as TRAINABLE_REGEX alternatives (re.fullmatch on "/"-paths).
_REGEXES = {
    LORA: r"(encoder|decoder)/layers(_\d+)?/[^/]+/[^/]+/lora_(a|b)",
    IA3: r"(encoder|decoder)/layers(_\d+)?/[^/]+/ia3_(key|value|hidden)",
    PREFIX: (r"(encoder|decoder)/prefix/.*"
             r"|(encoder|decoder)/layers(_\d+)?/[^/]+/prefix_(key|value)"),
    DEEP_PROMPTS: re.escape(DEEP_PROMPT_PATH),
}


def _check_int(where: str, name: str, value, minimum: int = 1) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ValueError(f"{where}: {name}={value!r}; expected an int >= {minimum}.")


@dataclasses.dataclass(frozen=True)
class LoraSpec:
  """LoRA on the projections named in `targets`, in every layer of both stacks.

  Each adapted [d_in, d_out] kernel W computes x W + (alpha / rank) (x A) B, with
  A [d_in, rank] ~ U[-1/sqrt(d_in), 1/sqrt(d_in)] (PEFT's kaiming-uniform) and
  B [rank, d_out] = 0, so at init the model is the frozen one exactly.

  Attributes:
    rank: r, >= 1 and at most min(d_in, d_out) of every adapted kernel.
    alpha: the scale's numerator (PEFT's lora_alpha); the update is scaled by alpha / r.
    targets: projection names: "query", "key", "value", "out" (every attention
      block: encoder self-, decoder self- and cross-attention) and the MLP's
      "wi" (T5 1.0) or "wi_0", "wi_1" (gated T5 1.1), "wo". Default: query and
      value, as Hu et al. (and PEFT for T5).
  """
  rank: int = 8
  alpha: float = 8.0
  targets: Sequence[str] = ("query", "value")

  def __post_init__(self):
    object.__setattr__(self, "targets", tuple(self.targets))
    _check_int("LoraSpec", "rank", self.rank)
    if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not (
        self.alpha > 0):
      raise ValueError(f"LoraSpec: alpha={self.alpha!r}; expected a number > 0.")
    if not self.targets:
      raise ValueError(f"LoraSpec: targets=(); expected some of {LORA_TARGETS}.")
    unknown = [t for t in self.targets if t not in LORA_TARGETS]
    if unknown:
      raise ValueError(f"LoraSpec: unknown target {unknown[0]!r}; expected names from "
                       f"{LORA_TARGETS}.")
    if len(set(self.targets)) != len(self.targets):
      raise ValueError(f"LoraSpec: targets={self.targets} name a projection twice.")

  @property
  def scale(self) -> float:
    return float(self.alpha) / self.rank


@dataclasses.dataclass(frozen=True)
class PrefixSpec:
  """Prefix tuning: P learned keys and values in every attention layer.

  Every query of encoder self-, decoder self- and cross-attention also attends
  to the layer's P prefix keys (and reads their values). The prefix has no
  relative position, so it gets no position bias, and no padding mask ever
  masks it; it is not in the decoder's key/value cache (it is the same at
  every step) but joined to the cached keys at each step.

  Attributes:
    length: P, >= 1.
    reparameterize: train through Li & Liang's MLP: a [P, D] embedding, a
      tanh layer of `hidden_dim`, and a linear layer giving every layer's
      keys and values of the stack's attention block at once. `adapter_params.fold_prefix`
      computes them once and stores them as the direct per-layer params
      (`reparameterize=False`) for inference. Without it the per-layer
      prefixes are the params (init N(0, 1)).
    hidden_dim: H, the MLP width (Li & Liang: 512).
  """
  length: int = 10
  reparameterize: bool = True
  hidden_dim: int = 512

  def __post_init__(self):
    _check_int("PrefixSpec", "length", self.length)
    _check_int("PrefixSpec", "hidden_dim", self.hidden_dim)
    if not isinstance(self.reparameterize, bool):
      raise ValueError(f"PrefixSpec: reparameterize={self.reparameterize!r}; expected True "
                       "or False.")


@dataclasses.dataclass(frozen=True)
class AdapterSpec:
  """The parameter-efficient methods a `Transformer` carries (one or several).

  Attributes:
    lora: a `LoraSpec`, or None.
    ia3: IA3's scaling vectors in every attention block (keys, values) and MLP.
    prefix: a `PrefixSpec`, or None.
    deep_prompts: a prompt at the input of every encoder layer after the
      first (the encoder prompt is the first layer's): the prompt positions'
      hidden states are replaced by the layer's prompt (the reference's
      `replace_prompt`). Needs an encoder prompt joined as a "prefix".
  """
  lora: Optional[LoraSpec] = None
  ia3: bool = False
  prefix: Optional[PrefixSpec] = None
  deep_prompts: bool = False

  def __post_init__(self):
    if self.lora is not None and not isinstance(self.lora, LoraSpec):
      raise ValueError(f"AdapterSpec: lora={self.lora!r}; expected a LoraSpec or None.")
    if self.prefix is not None and not isinstance(self.prefix, PrefixSpec):
      raise ValueError(f"AdapterSpec: prefix={self.prefix!r}; expected a PrefixSpec or None.")
    for name in ("ia3", "deep_prompts"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"AdapterSpec: {name}={getattr(self, name)!r}; expected True or "
                         "False.")
    if not self.methods:
      raise ValueError("AdapterSpec() holds no method; expected at least one of lora, ia3, "
                       "prefix, deep_prompts (or no AdapterSpec at all).")

  @property
  def methods(self) -> tuple:
    """The names of the methods this spec adds, in `METHODS` order."""
    on = {LORA: self.lora is not None, IA3: self.ia3, PREFIX: self.prefix is not None,
          DEEP_PROMPTS: self.deep_prompts}
    return tuple(m for m in METHODS if on[m])

  def replace(self, **changes) -> "AdapterSpec":
    return dataclasses.replace(self, **changes)

  def to_json(self) -> dict:
    """A JSON-ready dict (what a run's checkpoint metadata records); `from_json` reads it."""
    out = dataclasses.asdict(self)
    if self.lora is not None:
      out["lora"]["targets"] = list(self.lora.targets)
    return out

  @classmethod
  def from_json(cls, record: dict) -> "AdapterSpec":
    """The spec `to_json` wrote."""
    lora, prefix = record.get("lora"), record.get("prefix")
    return cls(lora=LoraSpec(**lora) if lora is not None else None,
               ia3=bool(record.get("ia3", False)),
               prefix=PrefixSpec(**prefix) if prefix is not None else None,
               deep_prompts=bool(record.get("deep_prompts", False)))

  def lora_for(self, projection: str) -> Optional[LoraSpec]:
    """The LoRA spec if `projection` (e.g. "query", "wo") is a target, else None."""
    return self.lora if self.lora is not None and projection in self.lora.targets else None

  def method_of(self, path: str) -> Optional[str]:
    """Which of this spec's methods owns the param at `path` (None: not a method param).

    With deep prompts the encoder prompt is theirs too (the first layer's prompt).
    """
    if self.deep_prompts and path == spec_lib.PROMPT_PATH:
      return DEEP_PROMPTS
    return next((m for m in self.methods if re.fullmatch(_REGEXES[m], path)), None)

  def trainable_regex(self, prompt_paths: Sequence[str] = ()) -> str:
    """The default TRAINABLE_REGEX: the methods' params and the given prompts'."""
    parts = [_REGEXES[m] for m in self.methods]
    paths = list(prompt_paths) + ([spec_lib.PROMPT_PATH] if self.deep_prompts else [])
    parts += [re.escape(p) for p in dict.fromkeys(paths)]
    return "|".join(parts)

  def check(self, config: T5Config, encoder_prompt: Optional[spec_lib.PromptSpec]) -> None:
    """Raises ValueError unless the methods fit the architecture (and the prompt)."""
    if self.lora is not None:
      _check_lora(self.lora, config)
    if self.deep_prompts:
      if encoder_prompt is None or encoder_prompt.combine != "prefix":
        found = "no encoder prompt" if encoder_prompt is None else (
            f"combine={encoder_prompt.combine!r}")
        raise ValueError(f"AdapterSpec: deep_prompts needs an encoder prompt joined as a "
                         f"'prefix' (its positions are replaced at every layer); found "
                         f"{found}. Set PROMPT_LENGTH > 0 and PROMPT_COMBINE='prefix'.")
      if config.num_encoder_layers < 2:
        raise ValueError(f"AdapterSpec: deep_prompts needs >= 2 encoder layers; the config "
                         f"has num_encoder_layers={config.num_encoder_layers}.")


PROMPT_TUNING = "prompt_tuning"
# The names a run picks a method by (configs/methods/<name>.gin sets METHOD).
METHOD_NAMES = (PROMPT_TUNING,) + METHODS


def for_method(method: str, *, lora: Optional[LoraSpec] = None,
               prefix: Optional[PrefixSpec] = None) -> Optional[AdapterSpec]:
  """The AdapterSpec of one method named as in `METHOD_NAMES` (the METHOD macro).

  Args:
    method: "prompt_tuning" (a soft prompt only: None), "lora", "ia3",
      "prefix" or "deep_prompts".
    lora: LoRA's spec for "lora" (default `LoraSpec()`); refused for other methods.
    prefix: the prefix's spec for "prefix" (default `PrefixSpec()`); refused for others.

  Raises:
    ValueError: an unknown name (with the closest known one), or a spec given
      to a method that does not use it.
  """
  if method not in METHOD_NAMES:
    close = difflib.get_close_matches(str(method), METHOD_NAMES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown method {method!r}; expected one of {list(METHOD_NAMES)}.{hint}")
  for name, given, owner in (("lora", lora, LORA), ("prefix", prefix, PREFIX)):
    if given is not None and method != owner:
      raise ValueError(f"method {method!r} got a {name} spec ({given}); expected {name}=None "
                       f"(only method {owner!r} reads it).")
  if method == PROMPT_TUNING:
    return None
  return AdapterSpec(lora=(lora or LoraSpec()) if method == LORA else None,
                     ia3=method == IA3,
                     prefix=(prefix or PrefixSpec()) if method == PREFIX else None,
                     deep_prompts=method == DEEP_PROMPTS)


def lora_shapes(config: T5Config) -> dict:
  """{projection name: (d_in, d_out)} of every projection the architecture has."""
  nk = config.num_heads * config.head_dim
  shapes = {"query": (config.emb_dim, nk), "key": (config.emb_dim, nk),
            "value": (config.emb_dim, nk), "out": (nk, config.emb_dim),
            "wo": (config.mlp_dim, config.emb_dim)}
  if len(config.mlp_activations) == 1:
    shapes["wi"] = (config.emb_dim, config.mlp_dim)
  else:
    shapes.update({f"wi_{i}": (config.emb_dim, config.mlp_dim)
                   for i in range(len(config.mlp_activations))})
  return shapes


def _check_lora(lora: LoraSpec, config: T5Config) -> None:
  shapes = lora_shapes(config)
  absent = [t for t in lora.targets if t not in shapes]
  if absent:
    raise ValueError(f"LoraSpec: target {absent[0]!r} matches no projection of this model "
                     f"(mlp_activations={config.mlp_activations}); its projections are "
                     f"{sorted(shapes)}.")
  for target in lora.targets:
    d_in, d_out = shapes[target]
    if lora.rank > min(d_in, d_out):
      raise ValueError(f"LoraSpec: rank={lora.rank} is larger than the {target} kernel "
                       f"[{d_in}, {d_out}] allows; expected rank <= {min(d_in, d_out)}.")
