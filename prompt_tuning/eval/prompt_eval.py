"""Evaluate saved prompts without training: what `prompt-tuning eval` runs.

`evaluate_prompt(...)` (configs/runs/prompt_eval.gin) takes the run's own
settings plus where the prompt is: a run's MODEL_DIR with EVAL_CHECKPOINT
("best", "latest" or a step), or EVAL_PROMPT_FILE (a `.npy`, a directory of
prompt files such as google-research/prompt-tuning's numpy checkpoints, a PEFT
adapter, another run). A run of another method (LoRA, IA3, prefix, deep
prompts: its checkpoints record the ADAPTERS) or of model tuning is evaluated
with its saved params in place. The prompts' lengths (and whether there is a
decoder prompt) are read off the saved arrays; a saved bank is evaluated one member at
a time (EVAL_PROMPT_INDEX). EVAL_PROMPT_FILES, a list of N such sources, is a
prompt ensemble (the paper's section 6): the N prompts are evaluated in one
batched pass through a bank, each member's metrics reported with their mean,
standard deviation and the ensemble's (majority vote / mean log-likelihood).
Per-example predictions go to `<name>_predictions.jsonl` beside the metrics.
"""
import dataclasses
import json
import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax.numpy as jnp

from prompt_tuning import tree
from prompt_tuning.checkpoints import bank as bank_lib, frozen as frozen_lib, run_dir
from prompt_tuning.data import inputs
from prompt_tuning.eval.evaluator import Evaluator
from prompt_tuning.models import Transformer
from prompt_tuning.models.adapters import AdapterSpec
from prompt_tuning.prompts import export
from prompt_tuning.prompts.spec import PROMPT_PATH, PROMPT_PATHS


def write_json(path: str, payload: Mapping) -> None:
  """Writes JSON atomically (temp file + rename)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def write_jsonl(path: str, rows) -> str:
  """Writes one JSON object per line, atomically."""
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
  os.replace(tmp, path)
  return path


def read_prompts(model_dir: Optional[str] = None, checkpoint: Union[str, int] = "best",
                 prompt_file: Optional[str] = None) -> tuple[dict, str]:
  """The saved trainable params to evaluate, and where they were read.

  Args:
    model_dir: a run's MODEL_DIR (see `run_dir.read_trainable`).
    checkpoint: "best", "latest" or a step of that run (or of `prompt_file`
      when that is a run directory).
    prompt_file: instead, a `.npy` encoder prompt ([P, D], or a [K, P, D] bank),
      a directory of prompt files (ours or the reference's numpy checkpoint),
      a PEFT prompt-tuning adapter, or another run's MODEL_DIR; it takes
      precedence over `model_dir`.

  Returns:
    (flat {param path: array}, the file or directory read).
  """
  if prompt_file:
    if not os.path.exists(prompt_file):
      raise ValueError(f"EVAL_PROMPT_FILE={prompt_file!r}: no such file or directory; "
                       "expected a .npy prompt, a directory of them, a PEFT adapter or a "
                       "MODEL_DIR.")
    return run_dir.read_prompt_source(prompt_file, checkpoint)
  return run_dir.read_trainable(model_dir, checkpoint)


def run_adapters(source: Optional[str]) -> Optional[AdapterSpec]:
  """The ADAPTERS a run at `source` trained with (its checkpoint metadata), else None."""
  if not source or not os.path.isdir(source) or not run_dir.is_run_dir(source):
    return None
  try:
    record = run_dir.read_meta(source).get("adapters")
  except (FileNotFoundError, ValueError):  # no orbax checkpoint: prompts only
    return None
  return AdapterSpec.from_json(record) if record else None


def evaluate_prompt(*, mixture_or_task_name: str, task_feature_lengths: Mapping[str, int],
                    initial_checkpoint_path: str, model_dir: Optional[str] = None,
                    checkpoint: Union[str, int] = "best", prompt_file: Optional[str] = None,
                    prompt_index: Optional[int] = None,
                    prompt_files: Optional[Sequence[str]] = None, model_config=None,
                    prompt_combine: str = "prefix", batch_size: int = 32,
                    split: str = "validation", num_examples: Optional[int] = None,
                    frozen_params_dtype: str = "float32", output_dir: Optional[str] = None,
                    register_tasks: Optional[Callable[[], Any]] = None) -> dict:
  """Evaluates a saved prompt on a split with the task's metrics (no training).

  Args:
    mixture_or_task_name, task_feature_lengths, initial_checkpoint_path,
      model_config, prompt_combine, frozen_params_dtype, register_tasks: as
      for `loop.train` (use the run's values).
    model_dir, checkpoint, prompt_file: where the prompt comes from; see
      `read_prompts`.
    prompt_index: which prompt of a saved [K, P, D] bank to evaluate
      (EVAL_PROMPT_INDEX); required for a bank, unused otherwise.
    prompt_files: EVAL_PROMPT_FILES, N prompt sources evaluated as an ensemble
      in one batched pass (see module doc); takes precedence over the others.
    batch_size: examples per decode call.
    split: the split to evaluate ("validation", "test", ...).
    num_examples: the first N examples only.
    output_dir: where `eval_<split>_<checkpoint>.json` and seqio's predictions go
      (default MODEL_DIR/eval, or next to the prompt file).

  Returns:
    {"<task>/<metric>": value, ...} (for an ensemble: {"members": [...], "mean",
    "std", "ensemble"}); also written as JSON to `output_dir`, the per-example
    predictions beside it.
  """
  if register_tasks is not None:
    register_tasks()
  inputs.get_task(mixture_or_task_name)
  if prompt_files:
    return _evaluate_ensemble(prompt_files, mixture_or_task_name, task_feature_lengths,
                              initial_checkpoint_path, checkpoint, model_config, prompt_combine,
                              batch_size, split, num_examples, frozen_params_dtype,
                              output_dir or (os.path.join(model_dir, run_dir.EVAL_DIR)
                                             if model_dir else "."))
  loaded = load_prompt_model(initial_checkpoint_path=initial_checkpoint_path,
                             model_dir=model_dir, checkpoint=checkpoint, prompt_file=prompt_file,
                             prompt_index=prompt_index, model_config=model_config,
                             prompt_combine=prompt_combine,
                             frozen_params_dtype=frozen_params_dtype)
  return evaluate_loaded(loaded, mixture_or_task_name=mixture_or_task_name,
                         task_feature_lengths=task_feature_lengths, batch_size=batch_size,
                         split=split, num_examples=num_examples, output_dir=output_dir)


@dataclasses.dataclass(frozen=True)
class LoadedPrompt:
  """A saved prompt (or method) on its frozen model, ready to evaluate on any task.

  Attributes:
    model: the `Transformer` the saved arrays fit (prompt lengths read off them).
    trainable: the saved params (float32), as a tree.
    frozen: the pretrained params the saved ones do not replace, in the eval dtype.
    prompt_index: the bank member to evaluate (None for a single prompt).
    source: where the arrays were read (a run's checkpoint or the prompt file).
    name: the output files' stem: eval_<split>_<this>.
    default_output_dir: MODEL_DIR/eval, or the prompt file's directory.
  """
  model: Transformer
  trainable: Any
  frozen: Any
  prompt_index: Optional[int]
  source: str
  name: str
  default_output_dir: str


def load_prompt_model(*, initial_checkpoint_path: str, model_dir: Optional[str] = None,
                      checkpoint: Union[str, int] = "best", prompt_file: Optional[str] = None,
                      prompt_index: Optional[int] = None, model_config=None,
                      prompt_combine: str = "prefix",
                      frozen_params_dtype: str = "float32") -> LoadedPrompt:
  """Reads a saved prompt and its frozen model once (arguments as for `evaluate_prompt`).

  Raises:
    ValueError: nothing to evaluate, params the model does not have, a prompt
      of the wrong width, or a bank without a valid `prompt_index`.
  """
  flat, source = read_prompts(model_dir, checkpoint, prompt_file)
  specs = export.prompt_specs(flat, prompt_combine, where=source)
  adapters = run_adapters(prompt_file or model_dir)
  config, frozen = frozen_lib.load_frozen(initial_checkpoint_path, model_config,
                                          dropout_rate=0.0)
  frozen_flat = tree.flatten(frozen)
  if not specs and adapters is None and not set(flat) & set(frozen_flat):
    raise ValueError(f"{source}: nothing to evaluate; expected {PROMPT_PATH} and/or "
                     f"{PROMPT_PATHS[1]} or tuned weights, found {sorted(flat)[:4]} (a "
                     "method's params, e.g. LoRA's, are read from their run's MODEL_DIR, "
                     "whose checkpoints record its ADAPTERS).")
  model = Transformer(config, encoder_prompt=specs.get("encoder"),
                      decoder_prompt=specs.get("decoder"), adapters=adapters)
  unknown = sorted(p for p in set(flat) - set(frozen_flat) - set(PROMPT_PATHS)
                   if adapters is None or adapters.method_of(p) is None)
  if unknown:
    raise ValueError(f"{source}: params {unknown} are not in the model"
                     + ("" if adapters else " (and the run records no ADAPTERS)") + ".")
  for spec in specs.values():
    spec.check(flat[spec.path], config.emb_dim, where=f"{source}: {spec.path}")
  if model.num_prompts > 1:
    if prompt_index is None or not 0 <= int(prompt_index) < model.num_prompts:
      raise ValueError(f"{source} holds a bank of {model.num_prompts} prompts; expected "
                       f"EVAL_PROMPT_INDEX in [0, {model.num_prompts}), got {prompt_index!r}.")
  else:
    prompt_index = None
  for path in flat:  # params trained besides the prompt replace the pretrained ones
    frozen_flat.pop(path, None)
  trainable = tree.unflatten({k: jnp.asarray(v, jnp.float32) for k, v in flat.items()})
  frozen = frozen_lib.cast_frozen(tree.unflatten(frozen_flat), frozen_params_dtype)
  what = os.path.basename(os.path.normpath(str(prompt_file))) if prompt_file else str(checkpoint)
  where = (os.path.join(model_dir, run_dir.EVAL_DIR) if model_dir and not prompt_file
           else os.path.dirname(os.path.abspath(prompt_file)))
  return LoadedPrompt(model, trainable, frozen, prompt_index, source, what, where)


def evaluate_loaded(loaded: LoadedPrompt, *, mixture_or_task_name: str,
                    task_feature_lengths: Mapping[str, int], batch_size: int = 32,
                    split: str = "validation", num_examples: Optional[int] = None,
                    output_dir: Optional[str] = None) -> dict:
  """Evaluates a `load_prompt_model` result on one task's split; writes the metrics as
  JSON and the per-example predictions beside them (see `evaluate_prompt`)."""
  index = loaded.prompt_index
  name = f"eval_{split}_{loaded.name}" + (f"_prompt{index}" if index is not None else "")
  output_dir = output_dir or loaded.default_output_dir
  os.makedirs(output_dir, exist_ok=True)
  evaluator = Evaluator(loaded.model, mixture_or_task_name, task_feature_lengths, batch_size,
                        split=split, num_examples=num_examples,
                        log_dir=os.path.join(output_dir, name))
  if not evaluator.has_tasks:
    raise ValueError(f"{mixture_or_task_name} has no {split!r} split with metric functions.")
  results = evaluator.evaluate(loaded.trainable, loaded.frozen, step=0, prompt_id=index)
  write_json(os.path.join(output_dir, f"{name}.json"),
             {"source": loaded.source, "split": split, "metrics": results})
  write_jsonl(os.path.join(output_dir, f"{name}_predictions.jsonl"),
              evaluator.prediction_rows(loaded.trainable, loaded.frozen, index))
  return results


def _evaluate_ensemble(sources, mixture_or_task_name, task_feature_lengths,
                       initial_checkpoint_path, checkpoint, model_config, prompt_combine,
                       batch_size, split, num_examples, frozen_params_dtype, output_dir) -> dict:
  """N saved prompts as one bank, evaluated together (see `Evaluator.evaluate_ensemble`)."""
  if isinstance(sources, str):
    sources = [sources]
  config, frozen = frozen_lib.load_frozen(initial_checkpoint_path, model_config,
                                          dropout_rate=0.0)
  bank = bank_lib.load_bank(list(sources), checkpoint, d_model=config.emb_dim)
  encoder, decoder = bank.specs(prompt_combine)
  model = Transformer(config, encoder_prompt=encoder, decoder_prompt=decoder)
  trainable = tree.unflatten({k: jnp.asarray(v, jnp.float32) for k, v in bank.params().items()})
  frozen = frozen_lib.cast_frozen(frozen, frozen_params_dtype)
  name = f"eval_{split}_ensemble_of_{len(bank)}"
  os.makedirs(output_dir, exist_ok=True)
  evaluator = Evaluator(model, mixture_or_task_name, task_feature_lengths, batch_size,
                        split=split, num_examples=num_examples)
  if not evaluator.has_tasks:
    raise ValueError(f"{mixture_or_task_name} has no {split!r} split with metric functions.")
  results = evaluator.evaluate_ensemble(trainable, frozen, step=0)
  results["names"], results["sources"] = bank.names, bank.sources
  write_json(os.path.join(output_dir, f"{name}.json"), {"split": split, **results})
  write_jsonl(os.path.join(output_dir, f"{name}_predictions.jsonl"),
              evaluator.prediction_rows(trainable, frozen))
  return results
