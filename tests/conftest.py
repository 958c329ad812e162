"""Shared tiny fixtures. Tests run on CPU with toy sizes (d_model 16, 2 layers)."""
import os

# Tests are CPU-only and small; keep XLA from grabbing every core per process.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
