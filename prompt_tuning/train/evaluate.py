"""Evaluation with seqio.Evaluator semantics, and `prompt-tuning eval`.

`Evaluator` wraps `seqio.Evaluator`: the validation split is preprocessed and
cached once; each call decodes it greedily with the current prompt (for the
task's `metric_fns`, after its `postprocess_fn`) and scores the targets (for
its `score_metric_fns`, e.g. rank classification), exactly as T5X's
`infer_eval` does. It also reports the teacher-forced validation loss.

`evaluate_prompt(...)` (and `prompt-tuning eval`, configs/runs/prompt_eval.gin)
evaluates a saved prompt without training: the run's gin files plus
EVAL_CHECKPOINT ("best", "latest" or a step) or EVAL_PROMPT_FILE (a `.npy`).
"""
import json
import math
import os
from typing import Any, Callable, Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import seqio

from prompt_tuning.models import Transformer
from prompt_tuning.prompts.prompt import DECODER_PROMPT_PATH, PROMPT_PATH, PROMPT_PATHS
from prompt_tuning.train import inputs, partition, step as step_lib

Params = Any


def _scalar(value) -> Optional[float]:
  """A seqio metric value (float, numpy, seqio Scalar) -> float, else None."""
  value = getattr(value, "value", value)
  try:
    out = float(np.asarray(value))
  except (TypeError, ValueError):
    return None
  return out


def _batches(ds, batch_size: int):
  """(index, features) examples -> padded [B, ...] numpy batches + real count."""
  for indices, features in ds.batch(batch_size).as_numpy_iterator():
    n = len(indices)
    pad = batch_size - n
    batch = {k: np.pad(features[k], [(0, pad)] + [(0, 0)] * (features[k].ndim - 1))
             for k in inputs.MODEL_FEATURES}
    yield indices, batch, n


class Evaluator:
  """Metrics of a (prompt, frozen model) on a task's validation split.

  Args:
    model: the `Transformer` (its config includes the prompt).
    mixture_or_task_name: a seqio task or mixture with metric functions.
    task_feature_lengths: {"inputs": L, "targets": T}; decoding runs T steps.
    batch_size: examples per decode call (the last batch is padded, so the
      decode function compiles once).
    split: the split to evaluate.
    num_examples: evaluate only the first N examples (None: all).
    log_dir: if set, seqio's JSONLogger writes predictions and metrics there.
  """

  def __init__(self, model: Transformer, mixture_or_task_name: str,
               task_feature_lengths: Mapping[str, int], batch_size: int,
               split: str = "validation", num_examples: Optional[int] = None,
               log_dir: Optional[str] = None, loss_cfg: Optional[step_lib.LossConfig] = None):
    from prompt_tuning.models import decoding, scoring  # pylint: disable=import-outside-toplevel
    inputs.keep_tf_off_accelerators()
    task = inputs.get_task(mixture_or_task_name)
    subtasks = seqio.get_subtasks(task)
    self.model = model
    self.batch_size = int(batch_size)
    self.split = split
    self.target_length = int(inputs.check_feature_lengths(task_feature_lengths)["targets"])
    # Vocabularies need not be hashable; their EOS ids must agree.
    eos_ids = {t.output_features["targets"].vocabulary.eos_id for t in subtasks}
    if len(eos_ids) > 1:
      raise ValueError(f"{mixture_or_task_name}: sub-tasks use different EOS ids "
                       f"{sorted(eos_ids)}; expected one.")
    self.eos_id = eos_ids.pop() if eos_ids else 1
    if log_dir:
      os.makedirs(log_dir, exist_ok=True)  # seqio's JSONLogger expects it
    self._seqio = seqio.Evaluator(
        mixture_or_task_name, seqio.EncDecFeatureConverter(pack=False), eval_split=split,
        sequence_length=dict(task_feature_lengths), num_examples=num_examples,
        use_memory_cache=True, async_compute_metrics=False,
        logger_cls=(seqio.JSONLogger,) if log_dir else (), log_dir=log_dir)
    self.task_names = [t.name for t in self._seqio.eval_tasks]
    self._decode = jax.jit(lambda params, tokens: decoding.greedy_decode(
        model, params, tokens, max_decode_length=self.target_length, eos_id=self.eos_id))
    self._score = jax.jit(lambda params, batch: scoring.score(model, params, batch))
    self._loss = step_lib.jit_eval_step(model, loss_cfg or step_lib.LossConfig())

  @property
  def has_tasks(self) -> bool:
    return bool(self.task_names)

  def _predict_fn(self, params):
    def predict(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size):
        tokens = np.asarray(self._decode(params, batch["encoder_input_tokens"]))
        # Fixed-length rows (seqio stacks them); vocabulary.decode stops at EOS.
        out += [(int(i), t) for i, t in zip(indices, tokens[:n])]
      return out
    return predict

  def _score_fn(self, params):
    def score(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size):
        scores = np.asarray(self._score(params, batch))
        out += [(int(i), float(s)) for i, s in zip(indices, scores[:n])]
      return out
    return score

  def evaluate(self, trainable: Params, frozen: Params, step: int) -> dict[str, float]:
    """Runs every eval task; returns {"<task>/<metric>": value} plus `<task>/loss`."""
    params = partition.merge(trainable, frozen)
    metrics_future, _ = self._seqio.evaluate(
        compute_metrics=True, step=int(step), predict_fn=self._predict_fn(params),
        score_fn=self._score_fn(params))
    results = {}
    for task, values in (metrics_future.result() or {}).items():
      for name, value in values.items():
        scalar = _scalar(value)
        if scalar is not None:
          results[f"{task}/{name}"] = scalar
    for task in self.task_names:
      sums: dict = {}
      for _, batch, n in _batches(self._seqio.cached_model_datasets[task], self.batch_size):
        batch["decoder_loss_weights"][n:] = 0  # padded rows carry no weight
        for k, v in self._loss(trainable, frozen, batch).items():
          sums[k] = sums.get(k, 0.0) + float(v)
      tokens = max(sums.get("num_tokens", 0.0), 1.0)
      results[f"{task}/loss_per_token"] = sums.get("cross_entropy", math.nan) / tokens
      results[f"{task}/token_accuracy"] = 100.0 * sums.get("accuracy", 0.0) / tokens
    return results


def resolve_metric(results: Mapping[str, float], metric: Optional[str],
                   task_names) -> str:
  """The key of the metric that selects the best checkpoint.

  `metric` may be "<task>/<name>" or just "<name>" (with one eval task); None
  takes the first metric the task's metric functions reported.

  Raises:
    ValueError: the metric is not among the reported ones (they are listed).
  """
  derived = ("loss_per_token", "token_accuracy")
  if metric is None:
    for key in results:
      if key.split("/", 1)[1] not in derived:
        return key
    return next(iter(results))
  if metric in results:
    return metric
  candidates = [f"{t}/{metric}" for t in task_names if f"{t}/{metric}" in results]
  if len(candidates) == 1:
    return candidates[0]
  raise ValueError(f"EVAL_METRIC={metric!r} is not one of the reported metrics "
                   f"{sorted(results)}; give '<task>/<metric>' for a mixture.")


def is_better(value: float, best: Optional[float], mode: str) -> bool:
  if mode not in ("max", "min"):
    raise ValueError(f"eval_metric_mode={mode!r}; expected 'max' or 'min'.")
  if value is None or not math.isfinite(value):
    return False
  return best is None or (value > best if mode == "max" else value < best)


def write_json(path: str, payload: Mapping) -> None:
  """Writes JSON atomically (temp file + rename)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def load_trainable(model_dir: Optional[str] = None, checkpoint: Union[str, int] = "best",
                   prompt_file: Optional[str] = None) -> tuple[dict, str]:
  """Reads a run's saved trainable params from their `.npy` exports.

  Args:
    model_dir: a run's MODEL_DIR.
    checkpoint: "best" (MODEL_DIR/best), "latest" (the newest
      numpy_checkpoints/checkpoint_<step>) or a step number.
    prompt_file: a single [P, D] `.npy` prompt instead (e.g. one shared by
      others); it takes precedence over `model_dir`.

  Returns:
    (flat {param path: array}, the directory or file read).
  """
  if prompt_file:
    if not os.path.isfile(prompt_file):
      raise ValueError(f"EVAL_PROMPT_FILE={prompt_file!r}: no such file.")
    return {PROMPT_PATH: np.load(prompt_file, allow_pickle=False)}, prompt_file
  if not model_dir or not os.path.isdir(model_dir):
    raise ValueError(f"MODEL_DIR={model_dir!r} is not a directory; expected a prompt-tuning "
                     "run (or set EVAL_PROMPT_FILE).")
  numpy_dir = os.path.join(model_dir, "numpy_checkpoints")
  steps = sorted(int(d.split("_")[-1]) for d in os.listdir(numpy_dir)
                 if d.startswith("checkpoint_")) if os.path.isdir(numpy_dir) else []
  if checkpoint == "best":
    where = os.path.join(model_dir, "best")
  elif checkpoint == "latest":
    if not steps:
      raise ValueError(f"{numpy_dir}: no checkpoint_<step> prompts to evaluate.")
    where = os.path.join(numpy_dir, f"checkpoint_{steps[-1]}")
  else:
    where = os.path.join(numpy_dir, f"checkpoint_{int(checkpoint)}")
  if not os.path.isdir(where):
    raise ValueError(f"EVAL_CHECKPOINT={checkpoint!r}: {where} does not exist; saved steps: "
                     f"{steps}{', and best/' if os.path.isdir(os.path.join(model_dir, 'best')) else ''}.")
  flat = {name[:-len(".npy")].replace(".", "/"): np.load(os.path.join(where, name))
          for name in sorted(os.listdir(where)) if name.endswith(".npy")}
  if not flat:
    raise ValueError(f"{where} holds no .npy params.")
  return flat, where


def evaluate_prompt(*, mixture_or_task_name: str, task_feature_lengths: Mapping[str, int],
                    initial_checkpoint_path: str, model_dir: Optional[str] = None,
                    checkpoint: Union[str, int] = "best", prompt_file: Optional[str] = None,
                    model_config=None, prompt_combine: str = "prefix", batch_size: int = 32,
                    split: str = "validation", num_examples: Optional[int] = None,
                    frozen_params_dtype: str = "float32", output_dir: Optional[str] = None,
                    register_tasks: Optional[Callable[[], Any]] = None) -> dict:
  """Evaluates a saved prompt on a split with the task's metrics (no training).

  Args:
    mixture_or_task_name, task_feature_lengths, initial_checkpoint_path,
      model_config, prompt_combine, frozen_params_dtype, register_tasks: as
      for `loop.train` (use the run's values).
    model_dir, checkpoint, prompt_file: where the prompt comes from; see
      `load_trainable`. P is read from the prompt itself, and so is the
      decoder prompt's length (0 when the run saved none).
    batch_size: examples per decode call.
    split: the split to evaluate ("validation", "test", ...).
    num_examples: the first N examples only.
    output_dir: where `eval_<split>_<checkpoint>.json` and seqio's predictions go
      (default MODEL_DIR/eval, or next to the prompt file).

  Returns:
    {"<task>/<metric>": value, ...}; also written as JSON to `output_dir`.
  """
  from prompt_tuning.train import frozen as frozen_lib  # pylint: disable=import-outside-toplevel
  if register_tasks is not None:
    register_tasks()
  inputs.get_task(mixture_or_task_name)
  flat, source = load_trainable(model_dir, checkpoint, prompt_file)
  prompts = {p: flat[p] for p in PROMPT_PATHS if p in flat}
  if not prompts or any(np.ndim(v) != 2 for v in prompts.values()):
    raise ValueError(f"{source}: expected a [P, D] prompt ({PROMPT_PATH}) and/or a "
                     f"[P_dec, D] decoder prompt ({DECODER_PROMPT_PATH}); found "
                     f"{ {k: np.shape(v) for k, v in flat.items()} }.")
  length = lambda p: int(prompts[p].shape[0]) if p in prompts else 0
  config, frozen = frozen_lib.load_model(
      initial_checkpoint_path, model_config, prompt_length=length(PROMPT_PATH),
      prompt_combine=prompt_combine, dropout_rate=0.0,
      decoder_prompt_length=length(DECODER_PROMPT_PATH))
  frozen_flat = partition.flatten(frozen)
  unknown = sorted(set(flat) - set(frozen_flat) - set(PROMPT_PATHS))
  if unknown:
    raise ValueError(f"{source}: params {unknown} are not in the model.")
  for path, prompt in prompts.items():
    if prompt.shape[1] != config.emb_dim:
      raise ValueError(f"{source}: {path} has shape {prompt.shape}; expected "
                       f"(P, d_model={config.emb_dim}).")
  for path in flat:  # params trained besides the prompt replace the pretrained ones
    frozen_flat.pop(path, None)
  trainable = partition.unflatten({k: jnp.asarray(v, jnp.float32) for k, v in flat.items()})
  frozen = frozen_lib.cast_frozen(partition.unflatten(frozen_flat), frozen_params_dtype)
  name = f"eval_{split}_{os.path.basename(str(prompt_file)) if prompt_file else checkpoint}"
  output_dir = output_dir or (os.path.join(model_dir, "eval") if model_dir and not prompt_file
                              else os.path.dirname(os.path.abspath(prompt_file)))
  os.makedirs(output_dir, exist_ok=True)
  evaluator = Evaluator(Transformer(config), mixture_or_task_name, task_feature_lengths,
                        batch_size, split=split, num_examples=num_examples,
                        log_dir=os.path.join(output_dir, name))
  if not evaluator.has_tasks:
    raise ValueError(f"{mixture_or_task_name} has no {split!r} split with metric functions.")
  results = evaluator.evaluate(trainable, frozen, step=0)
  write_json(os.path.join(output_dir, f"{name}.json"),
             {"source": source, "split": split, "metrics": results})
  return results


def main(argv=None) -> int:
  """`prompt-tuning eval`: see `prompt_tuning.train.main.main_eval`."""
  from prompt_tuning.train import main as main_lib  # pylint: disable=import-outside-toplevel
  return main_lib.main_eval(argv)


if __name__ == "__main__":
  raise SystemExit(main())
