"""T5 1.1 in Flax: config, named sizes, the encoder-decoder, decoding."""
from prompt_tuning.models import sizes
from prompt_tuning.models.sizes import get_config
from prompt_tuning.models.t5 import (Decoder, Encoder, T5Config, Transformer, init_cache,
                                     init_params, param_axes)

__all__ = ["sizes", "get_config", "T5Config", "Transformer", "Encoder", "Decoder",
           "init_params", "init_cache", "param_axes"]
from prompt_tuning.models import decoding  # noqa: E402  (decoding and scoring)
