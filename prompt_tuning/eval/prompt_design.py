"""Prompt design: evaluate the frozen model on a task told in words, nothing trained.

`evaluate_design(...)` (configs/methods/prompt_design.gin) rewrites the task's
inputs with a hard prompt (`data.prompt_design.Design`: a template, k
demonstrations from the train split) and runs the project's evaluator on the
frozen model without any soft prompt. It writes `MODEL_DIR/eval/design_<split>.json`
(the metrics, the design, one rendered input) and the per-example predictions beside it.
"""
import os
from typing import Any, Callable, Mapping, Optional

from prompt_tuning import tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.data import inputs, prompt_design
from prompt_tuning.eval.evaluator import Evaluator
from prompt_tuning.eval.prompt_eval import write_json, write_jsonl
from prompt_tuning.models import Transformer


def result_path(model_dir: str, split: str = "validation") -> str:
  """Where `evaluate_design` writes its metrics."""
  return os.path.join(model_dir, run_dir.EVAL_DIR, f"design_{split}.json")


def evaluate_design(*, mixture_or_task_name: str, task_feature_lengths: Mapping[str, int],
                    initial_checkpoint_path: str, model_dir: str,
                    template: str = prompt_design.INPUTS_FIELD, num_shots: int = 0,
                    demo_template: str = "{inputs} {targets}", separator: str = " ",
                    seed: int = 0, model_config=None, batch_size: int = 32,
                    split: str = "validation", num_examples: Optional[int] = None,
                    frozen_params_dtype: str = "float32",
                    register_tasks: Optional[Callable[[], Any]] = None) -> dict:
  """The frozen model's metrics on `mixture_or_task_name` with a hard prompt.

  Args:
    mixture_or_task_name, task_feature_lengths, initial_checkpoint_path,
      model_config, frozen_params_dtype, register_tasks: as for `loop.train`.
    model_dir: MODEL_DIR; results go to its eval/ directory.
    template, num_shots, demo_template, separator, seed: the
      `prompt_design.Design` (DESIGN_TEMPLATE, DESIGN_NUM_SHOTS, ...).
    batch_size: examples per decode call.
    split: the split evaluated.
    num_examples: the first N examples only.

  Returns:
    {"<task>/<metric>": value}, as `Evaluator.evaluate` gives them, for the
    original task's name.

  Raises:
    ValueError: a bad design (empty template, ...), a mixture, a split
      without metrics.
  """
  design = prompt_design.Design(template=template, num_shots=num_shots,
                                demo_template=demo_template, separator=separator, seed=seed)
  if not model_dir:
    raise ValueError("MODEL_DIR is required: where the prompt design's metrics are written.")
  if register_tasks is not None:
    register_tasks()
  task = inputs.get_task(mixture_or_task_name)
  designed = prompt_design.design_task(mixture_or_task_name, design)
  config, frozen = frozen_lib.load_frozen(initial_checkpoint_path, model_config,
                                          dropout_rate=0.0)
  frozen = frozen_lib.cast_frozen(frozen, frozen_params_dtype)
  out_dir = os.path.join(model_dir, run_dir.EVAL_DIR)
  os.makedirs(out_dir, exist_ok=True)
  evaluator = Evaluator(Transformer(config), designed, task_feature_lengths, batch_size,
                        split=split, num_examples=num_examples,
                        log_dir=os.path.join(out_dir, f"design_{split}"))
  if not evaluator.has_tasks:
    raise ValueError(f"{mixture_or_task_name} has no {split!r} split with metric functions.")
  raw = evaluator.evaluate({}, frozen, step=0)
  results = {key.replace(designed, task.name, 1): value for key, value in raw.items()}
  example = next(prompt_design.text_examples(
      inputs.get_task(designed), split).take(1).as_numpy_iterator(), {})
  write_json(result_path(model_dir, split), {
      "method": "prompt_design", "split": split, "metrics": results,
      "model_params": tree.count(frozen),
      "design": {"template": template, "num_shots": num_shots,
                 "demo_template": demo_template, "separator": separator, "seed": seed},
      "example_input": example.get("inputs", b"").decode("utf-8")})
  write_jsonl(os.path.join(out_dir, f"design_{split}_predictions.jsonl"),
              evaluator.prediction_rows({}, frozen))
  return results
