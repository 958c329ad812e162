"""Where the package's own files live: its gin configs and the demo's frozen model."""
import os

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def config_dir() -> str:
  """The folder holding `models/`, `prompts/` and `runs/` gin files (package data)."""
  path = os.path.join(_PACKAGE, "configs")
  if not os.path.isdir(os.path.join(path, "runs")):
    raise FileNotFoundError(f"No gin configs found: expected {path}/runs; is the package "
                            "installed with its data files?")
  return path


def demo_model_dir() -> str:
  """The demo's frozen tiny T5 1.1 (HF dir with spiece.model), shipped as package data.

  `python -m prompt_tuning.demo.pretrain` rebuilds it.
  """
  return os.path.join(_PACKAGE, "assets", "demo_t5")
