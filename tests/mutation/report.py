"""Per-module mutation scores from mutmut's results, with the equivalent mutants set aside.

    nice -n 19 mutmut run --max-children 2     # see setup.cfg
    python tests/mutation/report.py [--survivors]

A survivor is either killed by a test or listed in equivalent.txt beside this
file, one per line: `<mutant name>  # why no test can tell it from the original`.
The score of a module is killed / (mutants - equivalent), timeouts counting as
killed; a listed equivalent counts as equivalent whether or not a run reached it (it
survives by definition, so a run may skip it), and one a test kills is reported as
wrongly listed. A mutant of a function no selected test calls ("no tests") counts
against it: nothing would catch it. Mutants a stopped run never reached ("not
checked") are left out of the score and counted in their own column; a complete
run has none. Prints a Markdown table and, with --survivors, every survivor (and
"no tests" mutant) not yet explained. With --pending it prints only the names a resumed
run still has to decide (the mutants not checked, and the survivors, which mutmut re-runs
when named), leaving out the listed equivalents (each would run every test mapped to its
function, minutes for the model's layers, to survive as expected):

    mutmut run --max-children 2 $(python tests/mutation/report.py --pending)
"""
import argparse
import collections
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KILLED = {"killed", "timeout", "caught by type check"}


def _results() -> dict[str, str]:
  out = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True,
                       text=True, check=True).stdout
  found = {}
  for line in out.splitlines():
    match = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
    if match:
      found[match.group(1)] = match.group(2).strip()
  if not found:
    sys.exit("no mutmut results: run `mutmut run` first (see setup.cfg).")
  return found


def _equivalents() -> dict[str, str]:
  path = os.path.join(HERE, "equivalent.txt")
  out = {}
  for line in open(path, encoding="utf-8"):
    line = line.strip()
    if line and not line.startswith("#"):
      name, _, reason = line.partition("#")
      if not reason.strip():
        sys.exit(f"{path}: {name.strip()} has no reason; write one after '#'.")
      out[name.strip()] = reason.strip()
  return out


def _module(name: str) -> str:
  return name.split(".x", 1)[0].replace(".", "/") + ".py"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--survivors", action="store_true", help="list unexplained survivors")
  parser.add_argument("--pending", action="store_true",
                      help="print only the names `mutmut run` still has to decide, one per "
                           "line: the mutants not checked and the survivors not listed as "
                           "equivalent (re-run once a test for them is written)")
  args = parser.parse_args(argv)
  results, equivalent = _results(), _equivalents()
  if args.pending:
    for name, status in sorted(results.items()):
      if status not in KILLED and name not in equivalent:
        print(name)
    return 0
  stale = sorted(set(equivalent) - set(results))
  counts = collections.defaultdict(collections.Counter)
  unexplained, wrongly_equivalent = [], []
  for name, status in sorted(results.items()):
    row = counts[_module(name)]
    row["mutants"] += 1
    if status in KILLED:
      row["killed"] += 1
      if name in equivalent:  # a test tells it apart: the listed reason is wrong
        wrongly_equivalent.append(name)
    elif name in equivalent:  # need not run: it survives by definition
      row["equivalent"] += 1
    elif status == "not checked":
      row["not checked"] += 1
    else:
      row["survived"] += 1  # survived, no tests, suspicious, segfault, ...
      unexplained.append((name, status))
  print("| module | mutants | killed | equivalent | survived | not checked | score |")
  print("|---|---|---|---|---|---|---|")
  for module, row in sorted(counts.items()):
    scored = row["mutants"] - row["equivalent"] - row["not checked"]
    score = f"{100.0 * row['killed'] / scored:.1f}%" if scored else "-"
    print(f"| `{module}` | {row['mutants']} | {row['killed']} | {row['equivalent']} | "
          f"{row['survived']} | {row['not checked']} | {score} |")
  unchecked = sum(row["not checked"] for row in counts.values())
  if unchecked:
    print(f"\n{unchecked} mutants not checked: the run stopped early; `mutmut run` resumes it.")
  if stale:
    print(f"\nequivalent.txt names {len(stale)} mutants mutmut does not have (code changed?): "
          f"{stale[:5]}")
  if wrongly_equivalent:
    print(f"\nequivalent.txt lists {len(wrongly_equivalent)} mutants a test kills (drop them): "
          f"{wrongly_equivalent[:5]}")
  if args.survivors:
    print()
    for name, status in unexplained:
      print(f"{name}: {status}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
