"""Shared tiny fixtures. Tests run on CPU with toy sizes (d_model 16, 2 layers)."""
import os

import pytest

# Tests are CPU-only and small; keep XLA from grabbing every core per process.
# Subprocesses inherit XLA_FLAGS (test_sharding's workers keep them and set only their
# own device count).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
# The suite's cost is compiling toy programs, not running them: jax's
# `jax_disable_most_optimizations` (XLA's backend and LLVM passes at their lowest) cuts the
# CPU of compile-bound test files by about a quarter (test_prompt_bank.py 196 -> 147
# CPU-seconds; test_memory_levers.py + test_train_resume.py 420 -> 323). Subprocesses
# inherit it, except the demo test's run of `prompt-tuning demo`, whose wall-clock target
# is the user's, at jax's defaults. References stay independent of it (HF's torch logits,
# numpy); test_legacy_compat's stored logits hold to its tolerance either way.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
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


# The slow tier runs in CI at small size: a sweep's cases outside its sample carry the
# `full_size` marker and run only with `pytest --full-size` (before a release, or after
# changing what the sweep covers).
def pytest_addoption(parser):
  parser.addoption("--full-size", action="store_true", default=False,
                   help="also run the cases marked full_size (every case of the slow sweeps)")


def pytest_collection_modifyitems(config, items):
  if not config.getoption("--full-size"):
    dropped = [item for item in items if item.get_closest_marker("full_size")]
    if dropped:
      config.hook.pytest_deselected(items=dropped)
      items[:] = [item for item in items if not item.get_closest_marker("full_size")]
  # Under xdist (`pytest -n`), the files holding the minute-long `slow` tests run first,
  # each file's tests still together and in order (its module fixtures set up once):
  # worksteal's last tests are then short ones, and no worker waits out a long one alone.
  # Elsewhere the order stays the one asked for: mutmut lists a mutant's tests fastest
  # first, so its quick killers run before the training tests.
  if os.environ.get("PYTEST_XDIST_WORKER"):
    heavy = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in heavy)
