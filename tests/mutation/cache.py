"""mutmut's verdicts, carried from one machine to the next in the repository.

mutmut keeps what it has decided in mutants/ (git-ignored), on the machine that ran it:
beside each mutated source file a `<file>.py.meta` (every mutant's exit code, every
function's hash) and `mutmut-stats.json` (which tests call each function, and how long
each test takes). The slow modules need more CPU than one sitting has, so

    python tests/mutation/cache.py save      # after `mutmut run` stops: writes cache.json.gz
    python tests/mutation/cache.py restore   # on a fresh checkout, before `mutmut run`

`save` packs those files into cache.json.gz beside this file (committed with the tests it
was run against); `restore` writes them into a mutants/ that has none. `mutmut run` then
regenerates the mutants and keeps the verdict of every mutant whose function's hash is
unchanged (a changed function's mutants are run again), collects stats only for tests it
has not seen, and runs the mutants left. mutmut warns about non-Python files changed since
the stats' commit and keeps its verdicts (its default `on_dependency_change = "warn"`).
"""
import argparse
import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache.json.gz")
STATS = "mutmut-stats.json"
FORMAT = 1


def _files(mutants: str) -> dict[str, str]:
  """{path under mutants/: text} of the stats file and every .meta."""
  found = {}
  for root, _, names in os.walk(mutants):
    for name in names:
      if name.endswith(".py.meta") or (name == STATS and root == mutants):
        path = os.path.join(root, name)
        with open(path, encoding="utf-8") as f:
          found[os.path.relpath(path, mutants)] = f.read()
  return found


def _decided(files: dict[str, str]) -> int:
  return sum(code is not None for rel, text in files.items() if rel.endswith(".meta")
             for code in json.loads(text)["exit_code_by_key"].values())


def save(mutants: str = "mutants", cache: str = CACHE) -> int:
  files = _files(mutants)
  if STATS not in files:
    sys.exit(f"{mutants}/{STATS} not found: nothing to save (run `mutmut run` first, from "
             "the repo root).")
  blob = json.dumps({"format": FORMAT, "files": files}, sort_keys=True).encode("utf-8")
  tmp = cache + ".tmp"
  with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
    f.write(blob)  # mtime 0: the same verdicts give the same bytes
  os.replace(tmp, cache)  # atomic: a kill leaves the old cache whole
  print(f"{cache}: {len(files)} files, {_decided(files)} decided mutants")
  return 0


def restore(mutants: str = "mutants", cache: str = CACHE, force: bool = False) -> int:
  if not os.path.exists(cache):
    sys.exit(f"{cache} not found: nothing to restore (a first run starts from scratch).")
  with gzip.open(cache, "rb") as f:
    data = json.loads(f.read().decode("utf-8"))
  if data.get("format") != FORMAT:
    sys.exit(f"{cache}: format {data.get('format')!r}, expected {FORMAT}.")
  present = _files(mutants)  # none where mutants/ does not exist
  if present and not force:
    sys.exit(f"{mutants}/ already holds mutmut results ({len(present)} files, "
             f"{_decided(present)} decided mutants); expected none. Keep them (`mutmut run` "
             "resumes from them), or pass --force to replace them with the cache's.")
  for rel, text in data["files"].items():
    path = os.path.join(mutants, rel)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)
  print(f"{mutants}/: {len(data['files'])} files, {_decided(data['files'])} decided mutants "
        "restored; `mutmut run` resumes from them.")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("command", choices=("save", "restore"))
  parser.add_argument("--mutants", default="mutants", help="mutmut's directory")
  parser.add_argument("--force", action="store_true",
                      help="restore over results already in mutants/")
  args = parser.parse_args(argv)
  if args.command == "save":
    return save(args.mutants)
  return restore(args.mutants, force=args.force)


if __name__ == "__main__":
  sys.exit(main())
