"""Shared tiny fixtures. Tests run on CPU with toy sizes (d_model 16, 2 layers)."""
import os

import pytest

# Tests are CPU-only and small; keep XLA from grabbing every core per process.
# Subprocesses inherit XLA_FLAGS (test_sharding's workers keep them and set only their
# own device count). XLA's default optimization level stays: a lower one
# (--xla_backend_optimization_level=0 cuts compile CPU by about a third) changes float
# results, and test_legacy_compat compares logits with stored ones to float32 rounding.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# One persistent XLA compilation cache for the whole session: the xdist workers and
# every subprocess a test starts (CLI runs, sharding workers, compare's methods) inherit
# it, so the demo model's train and eval steps compile once, not once per process. A
# fresh directory per session (set by the first process, inherited by the others);
# executables are keyed by their HLO and jax version, so a hit is the same program.
# The process that made it removes it at exit (the workers exit before it does).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import atexit
  import shutil
  import tempfile
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="prompt_tuning_xla_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


# A two-task mixture of the demo's taskless tasks (multi-task runs and their stream).
DEMO_MIXTURE = "test_multitask_demo_mixture"
DEMO_MIXED = ("taskless_demo_count", "taskless_demo_majority")


@pytest.fixture(scope="session")
def demo_mixture():
  """Registers the demo tasks and DEMO_MIXTURE; returns the demo vocabulary."""
  import seqio  # pylint: disable=import-outside-toplevel
  from prompt_tuning.demo import tasks as demo_tasks  # pylint: disable=import-outside-toplevel
  vocab = demo_tasks.demo_vocabulary()
  demo_tasks.register_demo_tasks(vocab)
  seqio.MixtureRegistry.remove(DEMO_MIXTURE)
  seqio.MixtureRegistry.add(DEMO_MIXTURE, list(DEMO_MIXED), default_rate=1.0)
  return vocab
