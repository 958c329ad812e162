"""A command prints what its user needs: no start-up noise, errors in one message.

`setup_logging` runs before TensorFlow or JAX is imported. TensorFlow (only
the data pipeline's) is imported, and kept off accelerators, with the process's
native stderr pointed at /dev/null for that moment: its C++ start-up lines
(oneDNN, CUDA probing, "absl::InitializeLog") ignore TF_CPP_MIN_LOG_LEVEL in
today's TensorFlow. absl's Python warnings (seqio's sequence-length notes,
"uncached FunctionDataset") are raised to ERROR, and gin's "Path not found"
lines, logged while it probes the search paths for a file it then finds, are
dropped. Our own warnings still print. `--verbose` keeps everything.

`error_message` turns an exception into what the user reads: its type and
message, without the frames and without gin's "In call to configurable" lines
(the message already names the parameter, the path, what was expected).
"""
import contextlib
import logging
import os
import sys

_GIN_PROBE = "Path not found: %s"
_CONFIGURED = []


class _DropGinProbes(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.msg == _GIN_PROBE and record.pathname.endswith("resource_reader.py"))


@contextlib.contextmanager
def native_stderr_silenced():
  """Points file descriptor 2 at /dev/null (C/C++ writes), then puts it back."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(devnull)
    os.close(saved)


def _import_tensorflow_quietly() -> None:
  with native_stderr_silenced():
    try:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
    except ImportError:
      return
    try:  # what data.inputs.keep_tf_off_accelerators does, here while it is quiet
      tf.config.set_visible_devices([], "GPU")
      tf.config.set_visible_devices([], "TPU")
    except (RuntimeError, ValueError):
      pass


def setup_logging(verbose: bool = False) -> None:
  """Quiet by default (see module doc); `verbose` leaves every library's logging on.

  The first call decides (the console script's, with --verbose); later ones are no-ops.
  """
  if _CONFIGURED:
    return
  _CONFIGURED.append(verbose)
  if verbose:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  _import_tensorflow_quietly()
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
  root = logging.getLogger()
  if not any(isinstance(f, _DropGinProbes) for f in root.filters):
    root.addFilter(_DropGinProbes())
  logging.getLogger("absl").setLevel(logging.ERROR)
  try:  # absl's handler, if absl is imported, would otherwise print its own lines
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
    absl_logging.set_verbosity(absl_logging.ERROR)
  except ImportError:
    pass


def error_message(error: BaseException) -> str:
  """`Type: message`, gin's call-site lines and chained frames left out."""
  lines = [line for line in str(error).splitlines()
           if not line.strip().startswith("In call to configurable")]
  text = "\n".join(lines).strip() or repr(error)
  name = type(error).__name__
  # gin re-raises through a proxy class that keeps the original's name.
  return text if name in ("ValueError", "RuntimeError") else f"{name}: {text}"
