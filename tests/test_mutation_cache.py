"""tests/mutation/cache.py: mutmut's verdicts packed into the repository and back."""
import gzip
import importlib.util
import json
import os

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "mutation_cache", os.path.join(os.path.dirname(__file__), "mutation", "cache.py"))
cache = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cache)


def _write(root, rel, obj):
  path = root / rel
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(obj), encoding="utf-8")


def test_save_then_restore_gives_back_every_verdict_and_the_stats(tmp_path):
  mutants = tmp_path / "mutants"
  meta = {"exit_code_by_key": {"pkg.mod.x_f__mutmut_1": 1, "pkg.mod.x_f__mutmut_2": None},
          "hash_by_function_name": {"x_f": "abc"}}
  stats = {"tests_by_mangled_function_name": {"pkg.mod.x_f": ["tests/t.py::test_f"]}}
  _write(mutants, "pkg/mod.py.meta", meta)
  _write(mutants, "mutmut-stats.json", stats)
  _write(mutants, "pkg/mod.py", {"not": "kept"})  # the mutated source is regenerated
  blob = tmp_path / "cache.json.gz"
  cache.save(str(mutants), str(blob))
  first = blob.read_bytes()
  cache.save(str(mutants), str(blob))
  assert blob.read_bytes() == first  # the same verdicts, the same bytes (no mtime inside)
  assert sorted(json.loads(gzip.decompress(first))["files"]) == [
      "mutmut-stats.json", os.path.join("pkg", "mod.py.meta")]
  fresh = tmp_path / "fresh"
  cache.restore(str(fresh), str(blob))
  assert json.loads((fresh / "pkg" / "mod.py.meta").read_text()) == meta
  assert json.loads((fresh / "mutmut-stats.json").read_text()) == stats
  assert not (fresh / "pkg" / "mod.py").exists()


def test_restore_never_overwrites_results_already_there_unless_forced(tmp_path):
  mutants = tmp_path / "mutants"
  _write(mutants, "mutmut-stats.json", {})
  _write(mutants, "m.py.meta", {"exit_code_by_key": {"a": 1}, "hash_by_function_name": {}})
  blob = tmp_path / "cache.json.gz"
  cache.save(str(mutants), str(blob))
  _write(mutants, "m.py.meta", {"exit_code_by_key": {"a": 0}, "hash_by_function_name": {}})
  with pytest.raises(SystemExit, match=r"already holds mutmut results \(2 files, 1 decided"):
    cache.restore(str(mutants), str(blob))
  assert json.loads((mutants / "m.py.meta").read_text())["exit_code_by_key"] == {"a": 0}
  cache.restore(str(mutants), str(blob), force=True)
  assert json.loads((mutants / "m.py.meta").read_text())["exit_code_by_key"] == {"a": 1}


def test_save_without_stats_and_restore_without_a_cache_say_what_is_missing(tmp_path):
  with pytest.raises(SystemExit, match=r"mutmut-stats.json not found"):
    cache.save(str(tmp_path / "mutants"), str(tmp_path / "c.json.gz"))
  with pytest.raises(SystemExit, match=r"c.json.gz not found"):
    cache.restore(str(tmp_path / "mutants"), str(tmp_path / "c.json.gz"))
  assert not (tmp_path / "c.json.gz").exists()
