"""Explicit gin registrations; imported only by the CLI (prompt_tuning.cli.flags).

Library modules never import gin. Config files bind library functions where
they live through `from __gin__ import dynamic_registration`; what cannot be
reached that way is registered here, by one explicit call:

  prompt_tuning.DEMO_MODEL_DIR   the demo's frozen T5 (a Hugging Face dir
                                 shipped inside the package, so its path is
                                 only known at run time)
"""
_REGISTERED = False


def register() -> None:
  """Registers the constants above (idempotent)."""
  global _REGISTERED
  if _REGISTERED:
    return
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning import paths  # pylint: disable=import-outside-toplevel
  gin.constant("prompt_tuning.DEMO_MODEL_DIR", paths.demo_model_dir())
  _REGISTERED = True
