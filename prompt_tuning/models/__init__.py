"""T5 in Flax: config, named sizes of each family, the encoder-decoder, decoding, scoring,
and the parameter-efficient methods (adapters: LoRA, IA3, prefix, deep prompts)."""
from prompt_tuning.models import sizes
from prompt_tuning.models.config import T5Config
from prompt_tuning.models.sizes import get_config
from prompt_tuning.models import scan
from prompt_tuning.models import adapters
from prompt_tuning.models.adapters import AdapterSpec, LoraSpec, PrefixSpec
from prompt_tuning.models.t5 import (Decoder, Encoder, Transformer, as_model, encode,
                                     init_cache, init_params, param_axes)

__all__ = ["sizes", "get_config", "T5Config", "Transformer", "Encoder", "Decoder",
           "as_model", "encode", "init_params", "init_cache", "param_axes", "decoding",
           "scoring", "scan", "adapters", "AdapterSpec", "LoraSpec", "PrefixSpec",
           "adapter_params"]
from prompt_tuning.models import adapter_params, decoding, scoring  # noqa: E402  (they import the above)
