"""Where the project's gin configs live, from a checkout or an installed wheel."""
import importlib.resources
import os

_CHECKOUT_CONFIGS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def config_dir() -> str:
  """Returns the folder holding `models/`, `prompts/` and `runs/` gin files.

  A checkout keeps them in the top-level `configs/`; `pip install` copies that
  folder into the package as `prompt_tuning/configs` (see setup.py).
  """
  installed = importlib.resources.files("prompt_tuning") / "configs"
  if os.path.isdir(os.path.join(_CHECKOUT_CONFIGS, "runs")):
    return _CHECKOUT_CONFIGS
  if installed.is_dir():
    return str(installed)
  raise FileNotFoundError(
      f"No gin configs found: expected {_CHECKOUT_CONFIGS} (checkout) or "
      f"{installed} (installed package).")


def demo_model_dir() -> str:
  """The demo's frozen tiny T5 1.1 (HF dir with spiece.model), shipped as package data.

  `python -m prompt_tuning.demo.pretrain` rebuilds it.
  """
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "demo_t5")
