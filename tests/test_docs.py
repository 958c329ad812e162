"""Docs cannot drift: every path the README names exists, every gin file it
names is a real config, and the two set-up commands are the ones CI runs."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
_PATH = re.compile(r"(?<![\w/.$-])((?:notebooks|benchmarks|prompt_tuning|tests|\.ci)"
                   r"/[\w./{},-]*[\w}-])")
_GIN = re.compile(r"((?:prompt_tuning/configs/|configs/)?"
                  r"(?:models|prompts|runs|partitioning|methods)/[\w{},]+\.gin)")
CONFIGS = os.path.join(ROOT, "prompt_tuning", "configs")


def _expand(path):
  """Shell brace expansion: "a_{x,y}.gin" -> ["a_x.gin", "a_y.gin"]."""
  m = re.search(r"\{([^{}]*)\}", path)
  if not m:
    return [path]
  return [q for alt in m.group(1).split(",")
          for q in _expand(path[:m.start()] + alt + path[m.end():])]


def _code_blocks(text):
  return re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", text, re.S)


def test_every_repo_path_in_the_readme_exists():
  paths = sorted({q for p in _PATH.findall(README) for q in _expand(p)})
  assert paths, "README names no repo paths: is the regex broken?"
  missing = [p for p in paths if not os.path.exists(os.path.join(ROOT, p))]
  assert not missing, f"README names paths that do not exist: {missing}"


def test_readme_opens_with_the_two_setup_commands_ci_runs():
  first = _code_blocks(README)[0].strip().splitlines()
  commands = [l for l in first if l and not l.startswith("#")]
  assert len(commands) == 2, commands
  demo, tests = commands
  assert "prompt-tuning demo" in demo and "pip install" in demo
  assert "pytest" in tests and "torch==2.13.0" in tests
  ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
  assert "torch==2.13.0" in ci and '-e ".[test]"' in ci
  # The same test command in both: two workers that steal from each other's queues.
  command = "pytest -n 2 --dist worksteal"
  assert command in ci and command in tests


def test_every_gin_file_named_in_the_readme_is_in_configs():
  names = {q for p in _GIN.findall(README) for q in _expand(p)}
  assert names
  for name in names:
    rel = re.sub(r"^(prompt_tuning/)?configs/", "", name)
    assert os.path.isfile(os.path.join(CONFIGS, rel)), f"README names missing gin file {name}"
