"""The architecture of a T5 encoder-decoder, with T5X's field names.

Only the frozen model's shape and numerics live here. Soft prompts are not
part of the architecture: they are `prompt_tuning.prompts.spec.PromptSpec`s
given to the `Transformer` beside its config, so a checkpoint loader never has
to zero or re-derive a prompt field.
"""
import dataclasses
from typing import Sequence

import jax.numpy as jnp

ACTIVATION_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyperparameters of a T5 encoder-decoder (T5X field names).

  T5 1.1, Flan-T5 and mT5 use gated GELU (`mlp_activations=("gelu",
  "linear")`) and an untied output layer; the original T5 (1.0) uses ReLU and
  logits through the shared embedding (`logits_via_embedding=True`).
  `dtype` is the activation dtype; parameters are always float32 (or what the
  caller casts them to) and logits float32.
  """
  vocab_size: int = 32128
  emb_dim: int = 512
  num_heads: int = 6
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  head_dim: int = 64
  mlp_dim: int = 1024
  mlp_activations: Sequence[str] = ("gelu", "linear")
  dropout_rate: float = 0.1
  logits_via_embedding: bool = False
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dtype: str = "float32"

  def __post_init__(self):
    # A tuple keeps the config hashable (it is a static jit argument).
    object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))
    if self.dtype not in ACTIVATION_DTYPES:
      raise ValueError(f"T5Config.dtype={self.dtype!r}; expected one of {ACTIVATION_DTYPES}.")
    for name in ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim"):
      if getattr(self, name) <= 0:
        raise ValueError(f"T5Config.{name}={getattr(self, name)}; expected > 0.")
    for name in ("num_encoder_layers", "num_decoder_layers"):
      if getattr(self, name) < 0:
        raise ValueError(f"T5Config.{name}={getattr(self, name)}; expected >= 0.")

  @property
  def activation_dtype(self):
    return jnp.dtype(self.dtype)

  def replace(self, **changes) -> "T5Config":
    return dataclasses.replace(self, **changes)
