"""`prompt-tuning train` / `python -m prompt_tuning.train`: T5X-style flags -> gin -> train.

    prompt-tuning train \\
      --gin_file=models/t5_1_1_base_prompt.gin \\
      --gin_file=prompts/from_class_labels.gin \\
      --gin_file=runs/prompt_tune.gin \\
      --gin.MODEL_DIR="'/tmp/rte'" \\
      --gin.MIXTURE_OR_TASK_NAME="'taskless_super_glue_rte_v102'" \\
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/t5-base-lm-adapt'" \\
      --gin.CLASS_LABELS="['entailment', 'not_entailment']"

Flags (as T5X spells them): `--gin_file` (repeatable; relative names are
looked up in `--gin_search_paths`, then the project's configs/), `--gin.NAME=VALUE`
(repeatable; a gin binding, so strings need inner quotes), `--gin_search_paths`
(comma-separated), `--tfds_data_dir`. Files are parsed in the order given,
then the `--gin.` bindings, so a binding always wins.
"""
import argparse
import logging
import os
import sys
import time
from typing import Optional

from prompt_tuning import paths

_USAGE = __doc__


def parse_flags(argv) -> argparse.Namespace:
  """Splits T5X flags; `--gin.X=V` may appear any number of times, in any order."""
  parser = argparse.ArgumentParser(prog="prompt-tuning train", description=_USAGE,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--gin_file", action="append", default=[])
  parser.add_argument("--gin_search_paths", default="")
  parser.add_argument("--tfds_data_dir", default=None)
  parser.add_argument("--gin_bindings", action="append", default=[],
                      help="extra gin bindings (T5X also accepts this form)")
  bindings, rest = [], []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      bindings.append(f"{name} = {value}")
    else:
      rest.append(arg)
  args = parser.parse_args(rest)
  args.bindings = bindings + list(args.gin_bindings)
  if not args.gin_file:
    parser.error("at least one --gin_file is required (e.g. --gin_file=runs/demo.gin)")
  return args


def setup_gin(args: argparse.Namespace) -> None:
  """Parses gin files and bindings; missing files fail with the search paths named."""
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning import configurables  # pylint: disable=import-outside-toplevel
  configurables.register()
  # The user's paths, then the project's configs/, then the working directory.
  search = [p for p in args.gin_search_paths.split(",") if p] + [paths.config_dir(),
                                                                  os.getcwd()]
  for path in search:
    gin.add_config_file_search_path(path)
  for name in args.gin_file:
    if not os.path.isabs(name) and not any(
        os.path.isfile(os.path.join(p, name)) for p in search):
      raise FileNotFoundError(f"--gin_file={name!r} not found in the search paths {search}.")
  gin.clear_config()
  gin.parse_config_files_and_bindings(args.gin_file, args.bindings,
                                      finalize_config=False)
  if args.tfds_data_dir:
    import seqio  # pylint: disable=import-outside-toplevel
    seqio.set_tfds_data_dir_override(args.tfds_data_dir)


def _save_config(model_dir: str, config_str: str) -> str:
  """Saves the resolved gin config before running, so a failed run still says how it
  was made; never overwrites another run's config.gin (a different one goes to
  config_<UTC time>.gin beside it)."""
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, "config.gin")
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == config_str:
        return path
    path = os.path.join(model_dir, time.strftime("config_%Y%m%d_%H%M%S.gin", time.gmtime()))
  with open(path, "w") as f:
    f.write(config_str)
  return path


def run_train(argv, progress: bool = True) -> "loop.TrainResult":  # noqa: F821
  """Parses flags and gin, runs the gin-configured `loop.train`, saves config.gin."""
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.train import loop  # pylint: disable=import-outside-toplevel
  setup_gin(parse_flags(argv))
  configured = gin.get_configurable(loop.train)
  model_dir = gin.query_parameter("%MODEL_DIR")
  if not isinstance(model_dir, str) or not model_dir:
    raise ValueError(f"MODEL_DIR={model_dir!r}; expected a directory, e.g. "
                     "--gin.MODEL_DIR=\"'/tmp/run'\".")
  config_str = gin.config_str()
  _save_config(model_dir, config_str)
  result = configured(gin_config=config_str, progress=progress)
  with open(os.path.join(model_dir, "operative_config.gin"), "w") as f:
    f.write(gin.operative_config_str())
  return result


def main(argv: Optional[list] = None) -> int:
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  argv = sys.argv[1:] if argv is None else argv
  result = run_train(argv)
  print(f"done: {result.step} steps in {result.model_dir}")
  if result.best:
    print(f"best {result.best['metric']} = {result.best['value']:.4g} at step "
          f"{result.best['step']}")
  print(f"prompt: {result.prompt_path}")
  return 0


def main_eval(argv: Optional[list] = None) -> int:
  """`prompt-tuning eval`: the run's gin files + runs/prompt_eval.gin -> metrics."""
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.train import evaluate  # pylint: disable=import-outside-toplevel
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  setup_gin(parse_flags(sys.argv[1:] if argv is None else argv))
  results = gin.get_configurable(evaluate.evaluate_prompt)()
  for name, value in sorted(results.items()):
    print(f"{name}: {value:.4g}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
