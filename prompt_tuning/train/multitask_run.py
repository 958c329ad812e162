"""What a multi-task run adds to `loop.train` (MULTITASK): task ids, params, exports.

The tasks of the mixture are the bank's rows (`prompts.multitask.MultiTaskSpec`);
their trained params live under the encoder prompt's scope (`encoder/prompt/...`),
and the composed per-task prompts are written to MODEL_DIR/tasks/<task>.npy, a
bank directory that `prompt-tuning infer` and `checkpoints.bank.load_bank` read.
"""
import os
import re
from typing import Any, Mapping, Optional

import numpy as np
import seqio

from prompt_tuning import tree
from prompt_tuning.prompts import export, initializers, multitask as multitask_lib
from prompt_tuning.prompts.multitask import MultiTaskSpec
from prompt_tuning.prompts.spec import PROMPT_PATH

TASKS_DIR = "tasks"  # MODEL_DIR/tasks/<task>.npy: a multi-task run's prompts, one per task
SCOPE = PROMPT_PATH.rsplit("/", 1)[0]  # "encoder/prompt"


def tasks_dir(model_dir: str) -> str:
  return os.path.join(model_dir, TASKS_DIR)


def task_ids(multitask: MultiTaskSpec, task, prompt_length: int, decoder_prompt_length: int,
             adapters: Any) -> dict:
  """{sub-task: prompt id} of a multi-task run, after checking it can run.

  Raises:
    ValueError: no encoder prompt, a decoder prompt or adapters besides it, or
      a task of the mixture without a prompt (named).
  """
  if not prompt_length or decoder_prompt_length or adapters is not None:
    raise ValueError(f"MULTITASK with PROMPT_LENGTH={prompt_length}, DECODER_PROMPT_LENGTH="
                     f"{decoder_prompt_length}, ADAPTERS={adapters}; expected an encoder "
                     "prompt (PROMPT_LENGTH > 0) and nothing else to train.")
  return multitask_lib.tasks_of([t.name for t in seqio.get_subtasks(task)], multitask,
                                f"MIXTURE_OR_TASK_NAME={task.name!r}")


def init_params(multitask: MultiTaskSpec, prompt_length: int, prompt_init: Optional[Any],
                table: np.ndarray, rng) -> dict:
  """{"encoder/prompt/<name>": first value} (PROMPT_INIT makes the shared prompt)."""
  values = multitask_lib.init_params(multitask, prompt_length,
                                     prompt_init or initializers.random_uniform(), rng, table)
  return {f"{SCOPE}/{name}": value for name, value in values.items()}


def trainable_regex(params: Mapping[str, Any]) -> str:
  """The default TRAINABLE_REGEX of a multi-task run: exactly its prompt params."""
  return "|".join(re.escape(path) for path in sorted(params))


def scope_params(trainable: Mapping) -> dict:
  """The multi-task params (name -> array) under the encoder prompt's scope."""
  prefix = SCOPE + "/"
  return {k[len(prefix):]: v for k, v in tree.flatten(trainable).items()
          if k.startswith(prefix)}


def export_task_prompts(model_dir: str, multitask: MultiTaskSpec, trainable: Mapping) -> str:
  """Writes MODEL_DIR/tasks/<task>.npy, each task's [P, D] prompt (atomically)."""
  prompts = multitask_lib.task_prompts(multitask, scope_params(trainable))
  return export.write_npy_dir(tasks_dir(model_dir), prompts)
