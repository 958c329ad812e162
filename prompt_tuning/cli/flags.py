"""T5X-style flags -> gin, shared by every gin-configured command (train, eval).

Flags (as T5X spells them): `--gin_file` (repeatable; relative names are
looked up in `--gin_search_paths`, then the project's configs/, then the
working directory), `--gin.NAME=VALUE` (repeatable; a gin binding, so strings
need inner quotes), `--gin_bindings` (the same, T5X's other spelling),
`--gin_search_paths` (comma-separated), `--tfds_data_dir`. Files are parsed in
the order given, then the bindings, so a binding always wins.
"""
import argparse
import os
from typing import Optional, Sequence

from prompt_tuning import paths


def parse_flags(argv: Sequence[str], prog: str = "prompt-tuning",
                description: Optional[str] = None) -> argparse.Namespace:
  """Splits T5X flags; `--gin.X=V` may appear any number of times, in any order."""
  parser = argparse.ArgumentParser(prog=prog, description=description or __doc__,
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


def search_paths(args: argparse.Namespace) -> list[str]:
  """The user's --gin_search_paths, then the project's configs/, then the working dir."""
  return [p for p in args.gin_search_paths.split(",") if p] + [paths.config_dir(),
                                                              os.getcwd()]


def setup_gin(args: argparse.Namespace) -> None:
  """Parses gin files and bindings; missing files fail with the search paths named."""
  import gin  # pylint: disable=import-outside-toplevel
  from prompt_tuning.cli import configurables  # pylint: disable=import-outside-toplevel
  configurables.register()
  search = search_paths(args)
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
