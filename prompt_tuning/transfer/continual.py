"""Continual learning with a prompt library: each new task is one more entry.

`tune_into_library` prompt-tunes a task against the library's frozen model and
adds its prompt as a new entry. Nothing else changes: the frozen model is never
trained and the other entries' files are not opened for writing, so every task
tuned before keeps exactly its predictions (tested bit for bit), while the
library serves all of them from the one model (`prompt-tuning infer` with
PROMPTS = the library). Model tuning on the same sequence overwrites the one
copy of the weights task after task (`benchmarks/continual.py` measures what
that forgets).
"""
from typing import Any, Optional

from prompt_tuning.library import store
from prompt_tuning.train import loop


def tune_into_library(library_dir: str, *, model_dir: str, initial_checkpoint_path: str,
                      mixture_or_task_name: str, name: Optional[str] = None,
                      overwrite: bool = False, **train_kwargs: Any
                      ) -> tuple[loop.TrainResult, store.Entry]:
  """Trains a prompt for a new task (`loop.train`) and adds it to the library.

  The entry name, and the library's frozen model, are checked before training.

  Args:
    library_dir: the library (created if missing).
    model_dir, initial_checkpoint_path, mixture_or_task_name, **train_kwargs:
      `loop.train`'s arguments.
    name: the entry's name (default: the task's).
    overwrite: replace an entry of that name.

  Returns:
    (the run's TrainResult, the new entry).
  """
  name = name or mixture_or_task_name
  store.check_can_add(library_dir, name, initial_checkpoint_path, overwrite)
  result = loop.train(model_dir=model_dir, initial_checkpoint_path=initial_checkpoint_path,
                      mixture_or_task_name=mixture_or_task_name, **train_kwargs)
  return result, store.add(library_dir, model_dir, name, overwrite=overwrite)
