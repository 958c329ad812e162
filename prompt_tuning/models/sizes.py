"""Named T5 1.1 sizes (as the T5 1.1 release defines them) and tiny test sizes."""
from prompt_tuning.models.t5 import T5Config

_T5_1_1 = dict(vocab_size=32128, head_dim=64, mlp_activations=("gelu", "linear"),
               logits_via_embedding=False)

SIZES = {
    "small": T5Config(emb_dim=512, num_heads=6, num_encoder_layers=8,
                      num_decoder_layers=8, mlp_dim=1024, **_T5_1_1),
    "base": T5Config(emb_dim=768, num_heads=12, num_encoder_layers=12,
                     num_decoder_layers=12, mlp_dim=2048, **_T5_1_1),
    "large": T5Config(emb_dim=1024, num_heads=16, num_encoder_layers=24,
                      num_decoder_layers=24, mlp_dim=2816, **_T5_1_1),
    "xl": T5Config(emb_dim=2048, num_heads=32, num_encoder_layers=24,
                   num_decoder_layers=24, mlp_dim=5120, **_T5_1_1),
    "xxl": T5Config(emb_dim=4096, num_heads=64, num_encoder_layers=24,
                    num_decoder_layers=24, mlp_dim=10240, **_T5_1_1),
    # Test and demo sizes: T5 1.1 architecture, toy dimensions.
    "tiny": T5Config(vocab_size=64, emb_dim=16, num_heads=2, num_encoder_layers=2,
                     num_decoder_layers=2, head_dim=8, mlp_dim=32),
}


def get_config(name: str, **overrides) -> T5Config:
  """Returns the named T5 1.1 config, e.g. get_config("base", dropout_rate=0.0)."""
  if name not in SIZES:
    raise ValueError(f"unknown T5 size {name!r}; expected one of {sorted(SIZES)}.")
  return SIZES[name].replace(**overrides)
