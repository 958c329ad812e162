"""Killing a training process mid-run, for the resume-after-SIGKILL tests."""
import signal
import subprocess
import time


def kill_once_written(argv, env, path, timeout: float = 300) -> int:
  """Starts `argv`, sends SIGKILL as soon as `path` exists; returns its exit status.

  The test then checks the status is -SIGKILL (the kill landed before the run ended).
  """
  proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + timeout
  while not path.exists() and proc.poll() is None:
    assert time.time() < deadline, f"{path} did not appear within {timeout} s"
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  return proc.returncode
