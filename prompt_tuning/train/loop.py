"""The prompt-tuning run, read top to bottom: config, data, model, state, loop.

`train(...)` takes plain arguments (gin binds them from configs/runs/*.gin;
Python callers pass them directly) and returns a `TrainResult`.

Resume order: the run's own latest checkpoint in MODEL_DIR > a fresh prompt
from PROMPT_INIT on the frozen INITIAL_CHECKPOINT_PATH weights. Re-running the
same command therefore continues where a killed run stopped, with the same
data (the data position is checkpointed) and the same dropout (step RNG is
`fold_in(rng, step)`).

Partitioning (`prompt_tuning.sharding`): the devices form a data x model mesh
(NUM_PARTITIONS or MESH_SHAPE; default every device on `data`), the frozen and
trainable params, the optimizer state and the batches are placed on it by
LOGICAL_AXIS_RULES, and the step is jitted with those shardings in and out. On
several hosts each process reads its rows of every batch, and process 0 alone
writes MODEL_DIR's logs, metrics and `.npy` files (orbax writes checkpoints
from every process).
"""
import contextlib
import dataclasses
import logging
import math
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import optax
import tqdm

from prompt_tuning import losses, sharding, tree
from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.data import inputs
from prompt_tuning.eval import best as best_lib
from prompt_tuning.eval.evaluator import Evaluator
from prompt_tuning.models import T5Config, Transformer, adapter_params
from prompt_tuning.models.adapters import AdapterSpec
from prompt_tuning.prompts import export, initializers, spec as spec_lib
from prompt_tuning.prompts.multitask import MultiTaskSpec
from prompt_tuning.prompts.spec import DECODER_PROMPT_PATH, PROMPT_PATH
from prompt_tuning.train import multitask_run, optim, step as step_lib, trainable as trainable_lib
from prompt_tuning.train.state import TrainState


class IncompatibleRunError(ValueError):
  """MODEL_DIR holds a run made with other data settings or another frozen model."""


@dataclasses.dataclass
class TrainResult:
  """What a finished run produced.

  Attributes:
    model_dir: MODEL_DIR.
    step: prompt-tuning steps taken.
    start_step: where this call started: 0 for a fresh run, else the step of
      the checkpoint it resumed from.
    history: every logged record (also in MODEL_DIR/metrics.jsonl).
    last_eval: the last evaluation's metrics ({} if none ran).
    best: the best evaluation's record ({"step", "metric", "value"}) or None.
    prompt_path: the best prompt's `.npy` if evaluation ran, else the last one
      (the encoder prompt's; the decoder prompt's when PROMPT_LENGTH is 0).
    decoder_prompt_path: the decoder prompt's `.npy` beside it, or None when
      no decoder prompt was trained.
    task_prompts_dir: a multi-task run's per-task prompts (`<task>.npy`, of
      the best evaluation, else the last step), a bank directory; else None.
  """
  model_dir: str
  step: int
  history: list
  last_eval: dict
  best: Optional[dict]
  prompt_path: str
  decoder_prompt_path: Optional[str] = None
  start_step: int = 0
  task_prompts_dir: Optional[str] = None


class _Logger:
  """JSONL + TensorBoard (tensorboardX) writers in MODEL_DIR (`files`: process 0 only)."""

  def __init__(self, model_dir: str, start_step: int = 0, files: bool = True):
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    self.model_dir = model_dir
    # A killed run may have logged steps after its last checkpoint; they are
    # trained again now, so their records go (TensorBoard: purge_step).
    self.history = (run_dir.trim_metrics(model_dir, start_step) if files else
                    [r for r in run_dir.read_metrics(model_dir) if r["step"] <= start_step])
    purge = start_step + 1 if start_step else None
    self._writers = {k: SummaryWriter(os.path.join(model_dir, k), purge_step=purge)
                     for k in ("train", "eval")} if files else {}

  def write(self, kind: str, step: int, metrics: Mapping[str, float]):
    record = {"step": int(step), "kind": kind, **{k: float(v) for k, v in metrics.items()},
              "wall_time": time.time()}
    self.history.append(record)
    if not self._writers:
      return
    run_dir.append_metrics(self.model_dir, record)
    writer = self._writers.get(kind)  # TensorBoard: train and eval curves only
    if writer is None:
      return
    for name, value in metrics.items():
      if math.isfinite(float(value)):
        writer.add_scalar(name, float(value), int(step))
    writer.flush()

  def close(self):
    for w in self._writers.values():
      w.close()


def _check_positive(**values):
  for name, value in values.items():
    if not isinstance(value, int) or value <= 0:
      raise ValueError(f"{name}={value!r}; expected an int > 0.")


def _check_same_adapters(checkpointer, record: Optional[dict], model_dir: str) -> None:
  """Refuses to resume a run made with other ADAPTERS (before its state is read).

  Runs written before adapters existed record none. A latest checkpoint whose
  metadata does not read is left to `restore_readable`, which skips it.
  """
  try:
    recorded = checkpointer.read_meta().get("adapters")
  except Exception:  # pylint: disable=broad-except  (damaged: restore_readable decides)
    return
  if recorded != record:
    raise IncompatibleRunError(
        f"{model_dir} was trained with ADAPTERS={recorded}, not {record}. Use another "
        "MODEL_DIR, or the same method to resume.")


def train(*, model_dir: str, mixture_or_task_name: str,
          task_feature_lengths: Mapping[str, int], train_steps: int, batch_size: int,
          initial_checkpoint_path: str, model_config: Optional[T5Config] = None,
          prompt_length: int = 100, prompt_combine: str = "prefix",
          prompt_init: Optional[Callable] = None, decoder_prompt_length: int = 0,
          trainable_regex: Union[str, Callable, None] = None, frozen_params_dtype: str = "float32",
          adapters: Optional[AdapterSpec] = None, multitask: Optional[MultiTaskSpec] = None,
          optimizer: Optional[optax.GradientTransformation] = None,
          loss_config: Optional[losses.LossConfig] = None, dropout_rate: float = 0.1,
          num_microbatches: Optional[int] = None, random_seed: int = 0,
          eval_period: int = 1000, eval_split: str = "validation",
          eval_batch_size: Optional[int] = None, eval_num_examples: Optional[int] = None,
          eval_metric: Optional[str] = None, eval_metric_mode: str = "max",
          eval_at_start: bool = True, checkpoint_period: Optional[int] = None,
          keep_checkpoints: Optional[int] = 3, log_period: int = 50,
          register_tasks: Optional[Callable[[], Any]] = None, gin_config: str = "",
          progress: bool = True, num_partitions: Optional[int] = 1,
          mesh_shape: Optional[Sequence[int]] = None,
          logical_axis_rules: Optional[Sequence] = None) -> TrainResult:
  """Prompt-tunes a frozen T5 on a seqio task; see the module doc.

  Args:
    model_dir: MODEL_DIR; checkpoints, metrics and the prompt go here.
    mixture_or_task_name: MIXTURE_OR_TASK_NAME (a registered seqio name).
    task_feature_lengths: TASK_FEATURE_LENGTHS {"inputs": L, "targets": T}.
    train_steps: TRAIN_STEPS, counted in prompt-tuning steps from 0 (not
      continuing the pretrained checkpoint's global step as T5X does).
    batch_size: BATCH_SIZE.
    initial_checkpoint_path: INITIAL_CHECKPOINT_PATH, the frozen model.
    model_config: the architecture the checkpoint must match (None: derived).
    prompt_length: PROMPT_LENGTH (P), >= 0; 0 with a decoder prompt only.
    prompt_combine: "prefix", "after_bos" or "suffix".
    prompt_init: PROMPT_INIT, an initializer closure (default U[-0.5, 0.5]).
    decoder_prompt_length: DECODER_PROMPT_LENGTH, >= 0: a second prompt in
      front of the decoder input (U[-0.5, 0.5] init), trained with the first.
    trainable_regex: TRAINABLE_REGEX over "/"-joined param paths (default:
      the prompt only), or a function of the param tree returning one
      (`trainable.top_layers_regex`). With a regex, PROMPT_LENGTH and
      DECODER_PROMPT_LENGTH may both be 0 (model tuning: weights only).
    frozen_params_dtype: FROZEN_PARAMS_DTYPE, "float32" or "bfloat16".
    adapters: ADAPTERS, parameter-efficient methods on the frozen model (LoRA,
      IA3, prefix, deep prompts; `models.adapters.AdapterSpec`). Their params are
      made by `adapter_params.init_adapter_params` and trained with the prompts
      (PROMPT_LENGTH may then be 0); a TRAINABLE_REGEX must fit them.
    multitask: MULTITASK, a `prompts.multitask.MultiTaskSpec`: one prompt per
      task of the mixture, made from shared and task-specific params
      (PROMPT_LENGTH is the shared prompt's length, PROMPT_INIT makes it);
      each example trains and is evaluated with its task's prompt (its task id
      travels through the feature converter), and MODEL_DIR/tasks/ holds the
      per-task prompts.
    optimizer: any optax transformation (default: `optim.paper_adafactor()`).
    loss_config: z-loss, label smoothing, normalisation (T5X defaults).
    dropout_rate: DROPOUT_RATE.
    num_microbatches: NUM_MICROBATCHES: run each batch as M slices and sum
      their gradients (the batch's gradient; less activation memory). None = 1.
    random_seed: RANDOM_SEED (data order, prompt init, dropout).
    eval_period: EVAL_PERIOD in steps; 0 disables evaluation.
    eval_split: the split evaluated (the paper early-stops on validation).
    eval_batch_size: defaults to `batch_size`.
    eval_num_examples: evaluate only the first N examples.
    eval_metric: the metric whose best value is kept ("<task>/<name>" or
      "<name>"); None takes the task's first metric.
    eval_metric_mode: "max" or "min".
    eval_at_start: also evaluate the untrained prompt at step 0.
    checkpoint_period: steps between checkpoints (default `eval_period`, or
      `train_steps` without evaluation); the last step is always saved.
    keep_checkpoints: orbax checkpoints kept (None keeps all).
    log_period: steps between train-metric records.
    register_tasks: called first, e.g. to register tasks with VOCABULARY.
    gin_config: the run's resolved gin config: saved as MODEL_DIR/config.gin once the
      run starts (a command refused before that writes nothing) and stored with
      each checkpoint.
    progress: show a tqdm progress bar.
    num_partitions: NUM_PARTITIONS, devices per model replica (the mesh's
      `model` axis); the `data` axis takes the rest of the devices.
    mesh_shape: MESH_SHAPE, an explicit (data, model) instead.
    logical_axis_rules: LOGICAL_AXIS_RULES, (logical axis, mesh axis or None)
      pairs (None: `sharding.DEFAULT_RULES`, T5X's).
  """
  # ---------------------------------------------------------------- config
  if not model_dir:
    raise ValueError("MODEL_DIR is required: where checkpoints and metrics are written.")
  _check_positive(TRAIN_STEPS=train_steps, BATCH_SIZE=batch_size, log_period=log_period)
  step_lib.check_microbatches(batch_size, num_microbatches)
  if (trainable_regex is not None or adapters is not None) and (
      prompt_length == decoder_prompt_length == 0):
    # weights alone (model tuning) or a method alone, without soft prompts
    encoder_spec = decoder_spec = None
  elif multitask is not None:
    encoder_spec = spec_lib.multitask_prompt(multitask, prompt_length, prompt_combine,
                                             prompt_init)
    decoder_spec = None
  else:
    encoder_spec, decoder_spec = frozen_lib.prompt_specs(
        prompt_length, decoder_prompt_length, prompt_combine, prompt_init)
  if eval_period < 0:
    raise ValueError(f"EVAL_PERIOD={eval_period}; expected >= 0 (0 disables evaluation).")
  lengths = inputs.check_feature_lengths(task_feature_lengths)
  frozen_lib.check_checkpoint_path(initial_checkpoint_path)
  frozen_lib.check_frozen_dtype(frozen_params_dtype)
  if register_tasks is not None:
    register_tasks()
  task = inputs.get_task(mixture_or_task_name)
  task_ids = (multitask_run.task_ids(multitask, task, prompt_length, decoder_prompt_length,
                                     adapters) if multitask is not None else None)
  checkpoint_period = checkpoint_period or eval_period or train_steps
  loss_config = loss_config or losses.LossConfig()
  tx = optimizer if optimizer is not None else optim.paper_adafactor()
  partitioning = sharding.Partitioning.create(num_partitions, mesh_shape, logical_axis_rules)
  partitioning.check_batch(batch_size)
  if eval_period:
    partitioning.check_batch(eval_batch_size or batch_size, "eval_batch_size")
  shard_index, num_shards = partitioning.data_shard(batch_size)
  primary = sharding.is_primary()
  os.makedirs(model_dir, exist_ok=True)
  rng_init, rng_train = jax.random.split(jax.random.PRNGKey(random_seed))

  # Held until the run ends; a second run on MODEL_DIR refuses at once.
  with run_dir.lock(model_dir) if primary else contextlib.nullcontext():
    # --------------------------------------------------- model + frozen weights
    config, frozen = frozen_lib.load_frozen(initial_checkpoint_path, model_config,
                                            dropout_rate=dropout_rate)
    model_params = tree.count(frozen)
    model = Transformer(config, encoder_prompt=encoder_spec, decoder_prompt=decoder_spec,
                        adapters=adapters)
    table = frozen_lib.embedding_table(frozen)
    rngs = {PROMPT_PATH: rng_init, DECODER_PROMPT_PATH: jax.random.fold_in(rng_init, 1)}
    if multitask is None:
      prompts = {spec.path: initializers.make_prompt(spec, table, rngs[spec.path])
                 for spec in model.prompt_specs}
      params = frozen_lib.with_prompts(frozen, prompts)
    else:  # the shared and task params under the encoder prompt's scope
      mt_params = multitask_run.init_params(multitask, prompt_length, prompt_init, table,
                                            rngs[PROMPT_PATH])
      params = tree.merge(frozen, tree.unflatten(mt_params))
      if trainable_regex is None:
        trainable_regex = multitask_run.trainable_regex(mt_params)
    if callable(trainable_regex):  # e.g. trainable.top_layers_regex, from the model's depth
      trainable_regex = trainable_regex(params)
    if adapters is not None:  # the methods' params, which no checkpoint holds
      params = tree.merge(params, adapter_params.init_adapter_params(
          model, frozen, jax.random.fold_in(rng_init, 2)))
      trainable_lib.check_adapters(params, trainable_regex, adapters)
      if trainable_regex is None:
        trainable_regex = adapters.trainable_regex([s.path for s in model.prompt_specs])
    trainable, frozen = trainable_lib.split(params, trainable_regex)
    # Placed on the mesh first, then cast there: no device holds the whole model.
    frozen_shardings = partitioning.param_shardings(model, frozen)
    trainable_shardings = partitioning.param_shardings(model, trainable)
    frozen = frozen_lib.cast_frozen(partitioning.put(frozen, frozen_shardings),
                                    frozen_params_dtype)
    logging.info("trainable params: %s; %s", sorted(tree.flatten(trainable)), partitioning)

    adapters_record = adapters.to_json() if adapters is not None else None

    # ------------------------------------------------ state: restore or init
    create = lambda t, r: TrainState.create(t, tx, r)
    state_shardings = partitioning.like_params(jax.eval_shape(create, trainable, rng_train),
                                               trainable, trainable_shardings)
    state = jax.jit(create, out_shardings=state_shardings)(
        partitioning.put(trainable, trainable_shardings),
        partitioning.put(rng_train, partitioning.replicated))
    checkpointer = run_dir.Checkpointer(model_dir, keep=keep_checkpoints)
    fingerprint = inputs.fingerprint(mixture_or_task_name, "train", lengths, batch_size,
                                     random_seed, num_shards)
    if task_ids is not None:  # the stream also carries each example's prompt id
      fingerprint["task_ids"] = task_ids
    start_step = 0
    if checkpointer.latest_step() is not None:
      try:
        _check_same_adapters(checkpointer, adapters_record, model_dir)
        state, meta, _ = checkpointer.restore_readable(state)
        if meta.get("data") != fingerprint:
          raise IncompatibleRunError(
              f"{model_dir} holds a run with data {meta.get('data')}; this command asks for "
              f"{fingerprint}. Use another MODEL_DIR, or the same settings to resume.")
        if meta.get("initial_checkpoint_path") != initial_checkpoint_path:
          raise IncompatibleRunError(
              f"{model_dir} was trained on INITIAL_CHECKPOINT_PATH="
              f"{meta.get('initial_checkpoint_path')!r}, not {initial_checkpoint_path!r}.")
      except Exception:
        checkpointer.close()
        raise
      start_step = int(state.step)
      logging.info("resumed %s at step %d", model_dir, start_step)
    if gin_config and primary:  # what this run asked for; never overwrites another's
      run_dir.save_config(model_dir, gin_config)

    # ------------------------------------------------------------------ data
    # Each process reads its rows of every batch (all of them on one host).
    batches = inputs.train_batches(mixture_or_task_name, lengths, batch_size // num_shards,
                                   random_seed, start_batch=start_step,
                                   shard_index=shard_index, num_shards=num_shards,
                                   task_ids=task_ids)
    evaluator = None
    if eval_period and eval_split in task.splits:
      evaluator = Evaluator(
          model.clone(config=config.replace(dropout_rate=0.0)),
          mixture_or_task_name, lengths, eval_batch_size or batch_size, split=eval_split,
          num_examples=eval_num_examples, loss_cfg=loss_config, partitioning=partitioning,
          task_prompt_ids=task_ids)
      if not evaluator.has_tasks:
        evaluator = None
    elif eval_period:
      logging.warning("%s has no %r split; evaluation is off.", mixture_or_task_name,
                      eval_split)

    # ------------------------------------------------------------------- jit
    train_step = partitioning.scoped(step_lib.jit_train_step(
        model, tx, loss_config, num_microbatches,
        in_shardings=(state_shardings, frozen_shardings, partitioning.batch_sharding),
        out_shardings=(state_shardings, partitioning.replicated)))
    logger = _Logger(model_dir, start_step, files=primary)
    # What trains, against the pretrained model's size (`prompt-tuning compare` reads it).
    # A reparameterised prefix is folded for inference: fewer params are served than train.
    served = tree.count(trainable) + (
        sum(adapter_params.count_params(model, inference=True).values())
        - sum(adapter_params.count_params(model).values()) if adapters is not None else 0)
    logger.write("params", start_step, {"trainable_params": tree.count(trainable),
                                        "inference_params": served,
                                        "model_params": model_params})
    best = checkpointer.load_best()
    last_eval: dict = {}

    def run_eval(step: int):
      nonlocal best, last_eval
      results = evaluator.evaluate(state.trainable, frozen, step)
      mean = best_lib.add_task_mean(results, evaluator.task_names) if multitask else None
      logger.write("eval", step, results)
      last_eval = results
      key = (mean if mean and eval_metric is None else
             best_lib.resolve_metric(results, eval_metric, evaluator.task_names))
      if best_lib.is_better(results[key], best and best["value"], eval_metric_mode):
        best = {"step": int(step), "metric": key, "value": float(results[key])}
        checkpointer.save_best(state.trainable, best)
        if multitask is not None:
          values = sharding.host_arrays(state.trainable)  # every process: may be a collective
          if primary:
            multitask_run.export_task_prompts(model_dir, multitask, values)
      return results

    def save(step: int):
      checkpointer.save(step, state, {
          "data": fingerprint, "data_position": int(step),
          "initial_checkpoint_path": initial_checkpoint_path, "gin_config": gin_config,
          "model_config": dataclasses.asdict(config),
          "prompts": [{"path": spec.path, "length": spec.length,
                       "num_prompts": spec.num_prompts, "combine": spec.combine}
                      | ({"multitask": spec.multitask.to_json()} if spec.multitask else {})
                      for spec in model.prompt_specs],
          "adapters": adapters_record})

    # ------------------------------------------------------------------ loop
    if evaluator is not None and eval_at_start and start_step == 0:
      run_eval(0)
    bar = tqdm.tqdm(total=train_steps, initial=start_step,
                    disable=not (progress and primary), desc="prompt tuning",
                    dynamic_ncols=True)
    finite = jnp.array(True)
    window_start, tokens, t0 = start_step, 0, time.time()
    sums: dict = {}
    step = start_step
    try:
      while step < train_steps:
        local = next(batches)
        tokens += inputs.count_tokens(local) * num_shards  # this host's rows, scaled
        state, metrics = train_step(state, frozen, partitioning.global_batch(local, batch_size))
        finite = finite & jnp.isfinite(metrics["loss"])
        for k, v in metrics.items():
          sums[k] = sums.get(k, 0.0) + v
        step += 1
        bar.update(1)
        at_log = step % log_period == 0 or step == train_steps
        at_save = step % checkpoint_period == 0 or step == train_steps
        at_eval = evaluator is not None and (step % eval_period == 0 or step == train_steps)
        if not (at_log or at_save or at_eval):
          continue
        if not bool(finite):  # one host sync per log/save, not per step
          raise FloatingPointError(
              f"non-finite loss between steps {window_start + 1} and {step}; the last good "
              f"checkpoint in {model_dir} (step {checkpointer.latest_step()}) is intact.")
        n, elapsed = step - window_start, max(time.time() - t0, 1e-9)
        record = {k: float(v) / n for k, v in sums.items()}
        record.update(steps_per_second=n / elapsed, tokens_per_second=tokens / elapsed)
        logger.write("train", step, record)
        bar.set_postfix(loss=f"{record['loss']:.4g}", steps_s=f"{n / elapsed:.2f}",
                        tok_s=f"{tokens / elapsed:.0f}")
        sums, tokens, window_start, t0 = {}, 0, step, time.time()
        # Evaluate before saving: a run killed in between redoes this step and its
        # eval on resume, so no evaluation (and no best prompt) is skipped.
        if at_eval:
          results = run_eval(step)
          if primary:
            bar.write(f"step {step}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in results.items()
                if not k.endswith("loss_per_token")))
        if at_save:
          save(step)
    finally:
      bar.close()
      logger.close()
      checkpointer.close()

    names = sorted(tree.flatten(state.trainable))
    shown = next((p for p in (PROMPT_PATH, DECODER_PROMPT_PATH) if p in names), names[0])
    where = run_dir.best_dir(model_dir) if best is not None else run_dir.numpy_dir(model_dir,
                                                                                     step)
    decoder_prompt_path = (os.path.join(where, export.npy_name(DECODER_PROMPT_PATH))
                           if DECODER_PROMPT_PATH in names else None)
    tasks_dir = None
    if multitask is not None:
      tasks_dir = multitask_run.tasks_dir(model_dir)
      if best is None:  # no evaluation: the last step's prompts
        values = sharding.host_arrays(state.trainable)
        if primary:
          multitask_run.export_task_prompts(model_dir, multitask, values)
    return TrainResult(model_dir=model_dir, step=step, history=logger.history,
                       last_eval=last_eval, best=best,
                       prompt_path=os.path.join(where, export.npy_name(shown)),
                       decoder_prompt_path=decoder_prompt_path, start_step=start_step,
                       task_prompts_dir=tasks_dir)
