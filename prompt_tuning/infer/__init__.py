"""Inference: frozen model + prompt(s) + inputs -> predictions (`prompt-tuning infer`)."""
