"""prompt_tuning: soft-prompt tuning (Lester et al., 2021) of frozen T5 1.1 in JAX/Flax."""

__version__ = "0.1.0"
