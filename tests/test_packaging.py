"""The wheel carries the gin configs (and demo assets) a non-editable install needs."""
import glob
import os
import subprocess
import sys
import zipfile

import pytest

from prompt_tuning import paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_config_dir_is_the_packages_configs():
  assert paths.config_dir() == os.path.join(ROOT, "prompt_tuning", "configs")
  assert os.path.isdir(os.path.join(paths.config_dir(), "runs"))


@pytest.mark.slow
def test_wheel_contains_every_gin_file(tmp_path):
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-q", "-w", str(tmp_path), ROOT], check=True, capture_output=True)
  (wheel,) = glob.glob(str(tmp_path / "prompt_tuning-*.whl"))
  names = set(zipfile.ZipFile(wheel).namelist())
  gin_files = sorted(os.path.relpath(f, ROOT) for f in glob.glob(
      os.path.join(ROOT, "prompt_tuning", "configs", "**", "*.gin"), recursive=True))
  assert len(gin_files) > 20, "too few gin files found under prompt_tuning/configs/"
  for rel in gin_files:
    assert rel in names, f"{rel} missing from the wheel"
  assets = glob.glob(os.path.join(ROOT, "prompt_tuning", "assets", "**", "*"), recursive=True)
  for f in assets:
    if os.path.isfile(f):
      assert os.path.relpath(f, ROOT) in names, f"{f} missing from the wheel"
