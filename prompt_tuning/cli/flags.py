"""T5X-style flags -> gin, shared by every gin-configured command (train, eval).

Flags (as T5X spells them): `--gin_file` (repeatable; relative names are
looked up in `--gin_search_paths`, then the project's configs/, then the
working directory), `--gin.NAME=VALUE` (repeatable; a gin binding, so strings
need inner quotes), `--gin_bindings` (the same, T5X's other spelling),
`--gin_search_paths` (comma-separated), `--tfds_data_dir`. Files are parsed in
the order given, then the bindings, so a binding always wins.

Multi-host (train only; T5X's flags): `--multiprocess_gpu` with
`--coordinator_address=HOST:PORT`, `--process_count=N`, `--process_index=I`
calls `jax.distributed.initialize` before anything touches a device (on CPU
the processes talk through jax's gloo collectives, as the tests run them). On
TPU pods jax initializes itself.
"""
import argparse
import difflib
import os
import re
from typing import Optional, Sequence

from prompt_tuning import paths


def parse_flags(argv: Sequence[str], prog: str = "prompt-tuning",
                description: Optional[str] = None,
                multihost: bool = False) -> argparse.Namespace:
  """Splits T5X flags; `--gin.X=V` may appear any number of times, in any order.

  `multihost` adds T5X's multi-process flags (see `initialize_distributed`).
  """
  parser = argparse.ArgumentParser(prog=prog, description=description or __doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--gin_file", action="append", default=[])
  parser.add_argument("--gin_search_paths", default="")
  parser.add_argument("--tfds_data_dir", default=None)
  parser.add_argument("--gin_bindings", action="append", default=[],
                      help="extra gin bindings (T5X also accepts this form)")
  if multihost:
    parser.add_argument("--multiprocess_gpu", action="store_true",
                        help="initialize jax.distributed with the three flags below "
                             "(GPU clusters; CPU processes too)")
    parser.add_argument("--coordinator_address", default=None,
                        help="HOST:PORT of process 0's coordinator")
    parser.add_argument("--process_count", type=int, default=None)
    parser.add_argument("--process_index", type=int, default=None)
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


def initialize_distributed(args: argparse.Namespace) -> None:
  """`--multiprocess_gpu`: `jax.distributed.initialize` with T5X's three flags.

  Must run before the first jax computation of the process. Without
  `--multiprocess_gpu` nothing happens (one process, or a TPU pod, which
  initializes itself).

  Raises:
    ValueError: a flag is missing or out of range, naming it.
  """
  if not getattr(args, "multiprocess_gpu", False):
    given = [f"--{n}" for n in ("coordinator_address", "process_count", "process_index")
             if getattr(args, n, None) is not None]
    if given:
      raise ValueError(f"{', '.join(given)} given without --multiprocess_gpu; expected "
                       "--multiprocess_gpu too (or none of them).")
    return
  missing = [f"--{n}" for n in ("coordinator_address", "process_count", "process_index")
             if getattr(args, n) is None]
  if missing:
    raise ValueError(f"--multiprocess_gpu needs {', '.join(missing)}; expected all of "
                     "--coordinator_address=HOST:PORT, --process_count=N, --process_index=I.")
  if not (args.process_count >= 1 and 0 <= args.process_index < args.process_count):
    raise ValueError(f"--process_index={args.process_index}, --process_count="
                     f"{args.process_count}; expected 0 <= process_index < process_count.")
  import jax  # pylint: disable=import-outside-toplevel
  jax.distributed.initialize(coordinator_address=args.coordinator_address,
                             num_processes=args.process_count,
                             process_id=args.process_index)


def search_paths(args: argparse.Namespace) -> list[str]:
  """The user's --gin_search_paths, then the project's configs/, then the working dir."""
  return [p for p in args.gin_search_paths.split(",") if p] + [paths.config_dir(),
                                                              os.getcwd()]


_MACRO = re.compile(r"[A-Z][A-Z0-9_]*")
_INCLUDE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""", re.M)


def _find(name: str, search: Sequence[str]) -> Optional[str]:
  if os.path.isabs(name):
    return name if os.path.isfile(name) else None
  for path in search:
    if os.path.isfile(os.path.join(path, name)):
      return os.path.join(path, name)
  return None


def _config_texts(files: Sequence[str], search: Sequence[str]) -> list[str]:
  """The text of every gin file the run parses, its includes followed."""
  texts, todo, seen = [], list(files), set()
  while todo:
    path = _find(todo.pop(), search)
    if path is None or path in seen:
      continue
    seen.add(path)
    with open(path, encoding="utf-8") as f:
      texts.append(f.read())
    todo += _INCLUDE.findall(texts[-1])
  return texts


def check_macros(args: argparse.Namespace) -> None:
  """Refuses a `--gin.MACRO=...` that nothing reads (a typo), with a did-you-mean.

  gin itself refuses an unknown parameter of a configurable; a macro is only
  a name, so `--gin.TRAIN_STPES=5` would be accepted and ignored. A macro set
  on the command line must be referenced (`%MACRO`) or defined by one of the
  run's gin files (which then reference it), or by another binding.

  Raises:
    ValueError: naming the macro and the closest known macros.
  """
  texts = _config_texts(args.gin_file, search_paths(args))
  texts += args.bindings
  known = set()
  for text in texts:
    known |= set(re.findall(r"%([A-Z][A-Z0-9_]*)", text))
    known |= set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*=", text, re.M))
  for binding in args.bindings:
    name = binding.split("=", 1)[0].strip()
    if not _MACRO.fullmatch(name):
      continue
    referenced = {m for text in texts for m in re.findall(r"%([A-Z][A-Z0-9_]*)", text)}
    defined_in_files = any(re.search(rf"^\s*{name}\s*=", text, re.M) for text in texts
                           if text not in args.bindings)
    if name not in referenced and not defined_in_files:
      close = difflib.get_close_matches(name, sorted(known - {name}), n=3, cutoff=0.6)
      hint = f"; did you mean {' or '.join(close)}?" if close else \
          f"; the run's macros are {sorted(known - {name})}."
      raise ValueError(f"--gin.{name}: no gin file or binding of this run reads the macro "
                       f"{name}{hint}")


def setup_gin(args: argparse.Namespace) -> None:
  """Parses gin files and bindings; missing files fail with the search paths named.

  Every binding must be read: gin refuses an unknown parameter, `check_macros`
  an unknown macro, before anything runs.
  """
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
  check_macros(args)
  gin.clear_config()
  gin.parse_config_files_and_bindings(args.gin_file, args.bindings,
                                      finalize_config=False)
  if args.tfds_data_dir:
    import seqio  # pylint: disable=import-outside-toplevel
    seqio.set_tfds_data_dir_override(args.tfds_data_dir)


def query_macro(name: str):
  """A gin macro's value once set up, references resolved (`%prompt_tuning.DEMO_MODEL_DIR`
  in runs/demo.gin is a reference to a constant until it is called)."""
  import gin  # pylint: disable=import-outside-toplevel
  value = gin.query_parameter(f"%{name}")
  while isinstance(value, gin.config.ConfigurableReference):
    value = value.scoped_configurable_fn() if value.evaluate else value.scoped_configurable_fn
  return value
