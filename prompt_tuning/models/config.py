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
# Activation rematerialisation per layer (T5X's names, plus "dots"):
#   none     keep every activation for the backward pass
#   full     keep only each layer's input; recompute the layer in the backward
#   minimal  keep the matmuls against weights (jax.checkpoint_policies.
#            checkpoint_dots_with_no_batch_dims); recompute the rest
#   dots     keep every matmul, attention's too (checkpoint_dots)
REMAT_POLICIES = ("none", "full", "minimal", "dots")


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyperparameters of a T5 encoder-decoder (T5X field names).

  T5 1.1, Flan-T5 and mT5 use gated GELU (`mlp_activations=("gelu",
  "linear")`) and an untied output layer; the original T5 (1.0) uses ReLU and
  logits through the shared embedding (`logits_via_embedding=True`).
  `dtype` is the activation dtype; parameters are always float32 (or what the
  caller casts them to) and logits float32.

  `remat_policy` and `scan_layers` are how the model runs, not what it
  computes (T5X's scalable_t5 fields): they trade memory and compile time,
  never the result beyond float rounding. With `scan_layers` each stack's
  layers are one `nn.scan` and their params are stacked on axis 1
  (`models.scan.SCAN_AXIS`, logical axis "layers"): `encoder/layers/mlp/wo/kernel` is
  [F, L, D]. Checkpoints stay layer by layer (`encoder/layers_0/...`);
  `prompt_tuning.models.scan.to_layout` converts between the two.
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
  remat_policy: str = "none"
  scan_layers: bool = False

  def __post_init__(self):
    # A tuple keeps the config hashable (it is a static jit argument).
    object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))
    if self.dtype not in ACTIVATION_DTYPES:
      raise ValueError(f"T5Config.dtype={self.dtype!r}; expected one of {ACTIVATION_DTYPES}.")
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"T5Config.remat_policy={self.remat_policy!r}; expected one of "
                       f"{REMAT_POLICIES}.")
    if not isinstance(self.scan_layers, bool):
      raise ValueError(f"T5Config.scan_layers={self.scan_layers!r}; expected True or False.")
    for name in ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim"):
      if getattr(self, name) <= 0:
        raise ValueError(f"T5Config.{name}={getattr(self, name)}; expected > 0.")
    for name in ("num_encoder_layers", "num_decoder_layers"):
      if getattr(self, name) < 0:
        raise ValueError(f"T5Config.{name}={getattr(self, name)}; expected >= 0.")

  @property
  def activation_dtype(self):
    return jnp.dtype(self.dtype)

  def architecture(self) -> "T5Config":
    """This config without its execution choices (no remat, layer-by-layer params):
    the one a checkpoint's param tree is checked against."""
    return self.replace(remat_policy="none", scan_layers=False)

  def replace(self, **changes) -> "T5Config":
    return dataclasses.replace(self, **changes)
