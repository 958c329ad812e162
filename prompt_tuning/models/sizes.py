"""The T5 families users prompt-tune, with their named sizes, checkpoints and vocabularies.

  t5_1_1   T5 1.1 (and its LM-adapted checkpoints, the paper's): gated GELU, untied
  flan_t5  Flan-T5: T5 1.1's architecture, instruction-tuned weights
  t5_1_0   the original T5: ReLU, logits through the shared embedding
  mt5      mT5: T5 1.1's architecture, a 250,112-entry multilingual vocabulary

Sizes are the releases' own (T5X's gin files and the Hugging Face configs);
"tiny" is a toy T5 1.1 for tests.
"""
import dataclasses
from typing import Optional

from prompt_tuning.models.config import T5Config

_GATED = dict(mlp_activations=("gelu", "linear"), logits_via_embedding=False)
_RELU_TIED = dict(mlp_activations=("relu",), logits_via_embedding=True)


def _t5_1_1(vocab_size: int) -> dict:
  base = dict(vocab_size=vocab_size, head_dim=64, **_GATED)
  return {
      "small": T5Config(emb_dim=512, num_heads=6, num_encoder_layers=8,
                        num_decoder_layers=8, mlp_dim=1024, **base),
      "base": T5Config(emb_dim=768, num_heads=12, num_encoder_layers=12,
                       num_decoder_layers=12, mlp_dim=2048, **base),
      "large": T5Config(emb_dim=1024, num_heads=16, num_encoder_layers=24,
                        num_decoder_layers=24, mlp_dim=2816, **base),
      "xl": T5Config(emb_dim=2048, num_heads=32, num_encoder_layers=24,
                     num_decoder_layers=24, mlp_dim=5120, **base),
      "xxl": T5Config(emb_dim=4096, num_heads=64, num_encoder_layers=24,
                      num_decoder_layers=24, mlp_dim=10240, **base),
  }


_T5_1_0 = dict(vocab_size=32128, **_RELU_TIED)
FAMILIES = {
    "t5_1_1": {
        **_t5_1_1(32128),
        # Test and demo size: T5 1.1 architecture, toy dimensions.
        "tiny": T5Config(vocab_size=64, emb_dim=16, num_heads=2, num_encoder_layers=2,
                         num_decoder_layers=2, head_dim=8, mlp_dim=32),
    },
    "flan_t5": _t5_1_1(32128),
    "mt5": _t5_1_1(250112),
    "t5_1_0": {
        "small": T5Config(emb_dim=512, num_heads=8, num_encoder_layers=6, num_decoder_layers=6,
                          head_dim=64, mlp_dim=2048, **_T5_1_0),
        "base": T5Config(emb_dim=768, num_heads=12, num_encoder_layers=12,
                         num_decoder_layers=12, head_dim=64, mlp_dim=3072, **_T5_1_0),
        "large": T5Config(emb_dim=1024, num_heads=16, num_encoder_layers=24,
                          num_decoder_layers=24, head_dim=64, mlp_dim=4096, **_T5_1_0),
        "3B": T5Config(emb_dim=1024, num_heads=32, num_encoder_layers=24,
                       num_decoder_layers=24, head_dim=128, mlp_dim=16384, **_T5_1_0),
        "11B": T5Config(emb_dim=1024, num_heads=128, num_encoder_layers=24,
                        num_decoder_layers=24, head_dim=128, mlp_dim=65536, **_T5_1_0),
    },
}
SIZES = FAMILIES["t5_1_1"]  # the paper's family; `get_config(name)` reads it

T5_VOCABULARY = "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model"
MT5_VOCABULARY = "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"


@dataclasses.dataclass(frozen=True)
class Release:
  """Where a family's pretrained weights and vocabulary are published."""
  hf_id: str                  # Hugging Face hub id, "{size}" filled in
  t5x_path: Optional[str]     # T5X checkpoint on GCS, "{size}" filled in
  vocabulary: str             # SentencePiece model (100 extra ids)


_T5X = "gs://t5-data/pretrained_models/t5x"
RELEASES = {
    # The paper tunes the LM-adapted T5 1.1 checkpoints (step 1.1M).
    "t5_1_1": Release("google/t5-{size}-lm-adapt",
                      _T5X + "/t5_1_1_lm100k_{size}/checkpoint_1100000", T5_VOCABULARY),
    "flan_t5": Release("google/flan-t5-{size}", _T5X + "/flan_t5_{size}/checkpoint_{step}",
                       T5_VOCABULARY),
    "t5_1_0": Release("google-t5/t5-{size}", _T5X + "/t5_{size}/checkpoint_{step}",
                      T5_VOCABULARY),
    "mt5": Release("google/mt5-{size}", _T5X + "/mt5_{size}/checkpoint_1000000",
                   MT5_VOCABULARY),
}
# T5X checkpoint steps where they differ by size (T5X's docs/models.md, Flan-T5's README).
_STEPS = {
    ("flan_t5", "small"): 1198000, ("flan_t5", "base"): 1184000,
    ("flan_t5", "large"): 1164000, ("flan_t5", "xl"): 1138000, ("flan_t5", "xxl"): 1114000,
    ("t5_1_0", "small"): 1000000, ("t5_1_0", "base"): 999900, ("t5_1_0", "large"): 1000700,
    ("t5_1_0", "3B"): 1000000, ("t5_1_0", "11B"): 1000000,
}


def get_config(name: str, family: str = "t5_1_1", **overrides) -> T5Config:
  """Returns a named size, e.g. get_config("base") or get_config("xl", family="mt5").

  Args:
    name: a size of `family` ("small", "base", ...; "tiny" for tests).
    family: one of `FAMILIES`.
    **overrides: `T5Config` fields to replace (dropout_rate, dtype, ...).
  """
  if family not in FAMILIES:
    raise ValueError(f"unknown T5 family {family!r}; expected one of {sorted(FAMILIES)}.")
  if name not in FAMILIES[family]:
    raise ValueError(f"unknown {family} size {name!r}; expected one of "
                     f"{sorted(FAMILIES[family])}.")
  return FAMILIES[family][name].replace(**overrides)


def release(family: str, size: str) -> dict:
  """{"hf_id", "t5x_path", "vocabulary"} of a published checkpoint (t5x_path may be None)."""
  get_config(size, family)  # validates both names
  rel = RELEASES[family]
  hf_size = size.lower() if family == "t5_1_0" else size
  t5x = rel.t5x_path.format(size=size, step=_STEPS.get((family, size))) if rel.t5x_path else None
  return {"hf_id": rel.hf_id.format(size=hf_size), "t5x_path": t5x,
          "vocabulary": rel.vocabulary}
