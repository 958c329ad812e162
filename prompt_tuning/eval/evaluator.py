"""Evaluation with seqio.Evaluator semantics.

`Evaluator` wraps `seqio.Evaluator`: the validation split is preprocessed and
cached once; each call decodes it greedily with the current prompt (for the
task's `metric_fns`, after its `postprocess_fn`) and scores the targets (for
its `score_metric_fns`, e.g. rank classification), exactly as T5X's
`infer_eval` does. It also reports the teacher-forced validation loss.

Decoding and scoring run on a `sharding.Partitioning` (default: one device):
the params are placed by its rules, each batch is split over its batch axis
(replicated when its rows do not split evenly), and every output comes back
replicated, so each host of a multi-host run reads the same numbers.
"""
import math
import os
from typing import Any, Mapping, Optional

import jax
import numpy as np
import seqio

from prompt_tuning import sharding, tree
from prompt_tuning.eval import ensemble
from prompt_tuning.models import Transformer, decoding, scoring
from prompt_tuning import losses
from prompt_tuning.data import inputs

Params = Any


def _scalar(value) -> Optional[float]:
  """A seqio metric value (float, numpy, seqio Scalar) -> float, else None."""
  value = getattr(value, "value", value)
  try:
    out = float(np.asarray(value))
  except (TypeError, ValueError):
    return None
  return out


def _batches(ds, batch_size: int, prompt_id: Optional[int] = None):
  """(index, features) examples -> padded [B, ...] numpy batches + real count.

  With `prompt_id`, every batch also carries `prompt_ids` [B] = prompt_id.
  """
  for indices, features in ds.batch(batch_size).as_numpy_iterator():
    n = len(indices)
    pad = batch_size - n
    batch = {k: np.pad(features[k], [(0, pad)] + [(0, 0)] * (features[k].ndim - 1))
             for k in inputs.MODEL_FEATURES}
    if prompt_id is not None:
      batch["prompt_ids"] = np.full((batch_size,), prompt_id, np.int32)
    yield indices, batch, n


class Evaluator:
  """Metrics of a (prompt, frozen model) on a task's validation split.

  Args:
    model: the `Transformer` (its prompt specs say what the prompts are).
    mixture_or_task_name: a seqio task or mixture with metric functions.
    task_feature_lengths: {"inputs": L, "targets": T}; decoding runs T steps.
    batch_size: examples per decode call (the last batch is padded, so the
      decode function compiles once).
    split: the split to evaluate.
    num_examples: evaluate only the first N examples (None: all).
    log_dir: if set, seqio's JSONLogger writes predictions and metrics there.
    partitioning: the mesh and rules to run on (default: the first device).
    task_prompt_ids: {task: prompt id} of a multi-task bank: each task's
      examples use their task's prompt (every eval task must have one).
  """

  def __init__(self, model: Transformer, mixture_or_task_name: str,
               task_feature_lengths: Mapping[str, int], batch_size: int,
               split: str = "validation", num_examples: Optional[int] = None,
               log_dir: Optional[str] = None, loss_cfg: Optional[losses.LossConfig] = None,
               partitioning: Optional[sharding.Partitioning] = None,
               task_prompt_ids: Optional[Mapping[str, int]] = None):
    self.partitioning = partitioning or sharding.Partitioning.single_device()
    self.partitioning.check_batch(int(batch_size), "eval batch size")
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
    self.task_prompt_ids = dict(task_prompt_ids) if task_prompt_ids is not None else None
    missing = sorted(set(self.task_names) - set(self.task_prompt_ids or self.task_names))
    if missing:
      raise ValueError(f"{mixture_or_task_name}: eval tasks {missing} have no prompt in the "
                       f"multi-task bank, whose tasks are {sorted(self.task_prompt_ids)}.")
    mesh, out = self.partitioning, self.partitioning.replicated
    decode = mesh.scoped(jax.jit(lambda params, tokens, ids: decoding.greedy_decode(
        model, params, tokens, max_decode_length=self.target_length, eos_id=self.eos_id,
        prompt_ids=ids), out_shardings=out))
    score = mesh.scoped(jax.jit(lambda params, batch: scoring.score(model, params, batch),
                                out_shardings=out))
    loss = mesh.scoped(losses.jit_eval_step(model, loss_cfg or losses.LossConfig()))
    self._decode = lambda params, tokens, ids: decode(params, self._rows(tokens),
                                                      self._rows(ids))
    self._score = lambda params, batch: score(params, self._rows(batch))
    self._loss = lambda trainable, frozen, batch: loss(
        self._placed(trainable), self._placed(frozen), self._rows(batch))
    self._shardings: dict = {}  # {param path: NamedSharding}, filled on first use
    # {task: {example index: [T] or [K, T] decoded ids}} of the last evaluation.
    self.last_decodes: dict = {}

  def _placed(self, params: Params) -> Params:
    """Params (any subtree) on the mesh, by the rules (a no-op when already there)."""
    flat = tree.flatten(params)
    if not set(flat) <= set(self._shardings):
      self._shardings.update(tree.flatten(self.partitioning.param_shardings(self.model, params)))
    return self.partitioning.put(params, tree.unflatten({k: self._shardings[k] for k in flat}))

  def _rows(self, values):
    """[N, ...] host arrays -> split over the batch axis (replicated if N does not split)."""
    if values is None:
      return None
    mesh = self.partitioning
    rows = len(jax.tree.leaves(values)[0])
    return mesh.put(values, mesh.batch_sharding if rows % mesh.batch_ways == 0
                    else mesh.replicated)

  def _task_of(self, ds) -> Optional[str]:
    for name, cached in self._seqio.cached_model_datasets.items():
      if cached is ds:
        return name
    return None

  @property
  def has_tasks(self) -> bool:
    return bool(self.task_names)

  def _prompt_id(self, task: Optional[str], prompt_id: Optional[int]) -> Optional[int]:
    """The prompt a task's examples use: its multi-task id, else `prompt_id`."""
    if prompt_id is None and self.task_prompt_ids is not None:
      return self.task_prompt_ids[task]
    return prompt_id

  def _predict_fn(self, params, prompt_id):
    def predict(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size,
                                        self._prompt_id(self._task_of(ds), prompt_id)):
        tokens = np.asarray(self._decode(params, batch["encoder_input_tokens"],
                                         batch.get("prompt_ids")))
        # Fixed-length rows (seqio stacks them); vocabulary.decode stops at EOS.
        out += [(int(i), t) for i, t in zip(indices, tokens[:n])]
      self.last_decodes[self._task_of(ds)] = dict(out)
      return out
    return predict

  def _score_fn(self, params, prompt_id):
    def score(ds, model_feature_shapes=None):
      del model_feature_shapes
      out = []
      for indices, batch, n in _batches(ds, self.batch_size,
                                        self._prompt_id(self._task_of(ds), prompt_id)):
        scores = np.asarray(self._score(params, batch))
        out += [(int(i), float(s)) for i, s in zip(indices, scores[:n])]
      return out
    return score

  def _metrics(self, step, predict_fn, score_fn) -> dict[str, float]:
    metrics_future, _ = self._seqio.evaluate(compute_metrics=True, step=int(step),
                                             predict_fn=predict_fn, score_fn=score_fn)
    results = {}
    for task, values in (metrics_future.result() or {}).items():
      for name, value in values.items():
        scalar = _scalar(value)
        if scalar is not None:
          results[f"{task}/{name}"] = scalar
    return results

  def _teacher_forced(self, trainable, frozen, prompt_id) -> dict[str, float]:
    results = {}
    for task in self.task_names:
      sums: dict = {}
      for _, batch, n in _batches(self._seqio.cached_model_datasets[task], self.batch_size,
                                  self._prompt_id(task, prompt_id)):
        batch["decoder_loss_weights"][n:] = 0  # padded rows carry no weight
        for k, v in self._loss(trainable, frozen, batch).items():
          sums[k] = sums.get(k, 0.0) + float(v)
      tokens = max(sums.get("num_tokens", 0.0), 1.0)
      results[f"{task}/loss_per_token"] = sums.get("cross_entropy", math.nan) / tokens
      results[f"{task}/token_accuracy"] = 100.0 * sums.get("accuracy", 0.0) / tokens
    return results

  def evaluate_ensemble(self, trainable: Params, frozen: Params, step: int) -> dict:
    """Every prompt of the model's bank as an ensemble member, in one batched pass.

    Each batch of examples is replicated once per member (row b * K + k is
    example b with prompt k) and decoded and scored together; the members'
    metrics come from their own rows, the ensemble's from the majority vote
    of the decodes (generation metrics) and the mean of the scores (score
    metrics, e.g. rank classification).

    Returns:
      {"members": [K results, as `evaluate` gives], "mean": {...}, "std": {...}
      over the members, "ensemble": {...} (no teacher-forced loss)}.
    """
    k = self.model.num_prompts
    params = self._placed(tree.merge(trainable, frozen))
    ids = np.tile(np.arange(k, dtype=np.int32), self.batch_size)
    decoded, scored = {}, {}

    def all_decodes(ds):  # [(index, [K, T])], once per dataset
      if id(ds) not in decoded:
        out = []
        for indices, batch, n in _batches(ds, self.batch_size):
          tokens = np.repeat(batch["encoder_input_tokens"], k, axis=0)
          rows = np.asarray(self._decode(params, tokens, ids)).reshape(self.batch_size, k, -1)
          out += list(zip((int(i) for i in indices), rows[:n]))
        decoded[id(ds)] = out
        self.last_decodes[self._task_of(ds)] = dict(out)
      return decoded[id(ds)]

    def all_scores(ds):  # [(index, [K])]
      if id(ds) not in scored:
        out = []
        for indices, batch, n in _batches(ds, self.batch_size):
          rows = {f: np.repeat(v, k, axis=0) for f, v in batch.items()}
          rows["prompt_ids"] = ids
          values = np.asarray(self._score(params, rows)).reshape(self.batch_size, k)
          out += list(zip((int(i) for i in indices), values[:n]))
        scored[id(ds)] = out
      return scored[id(ds)]

    def member(m):
      return (lambda ds, model_feature_shapes=None: [(i, r[m]) for i, r in all_decodes(ds)],
              lambda ds, model_feature_shapes=None: [(i, float(s[m])) for i, s in all_scores(ds)])

    members = []
    for m in range(k):
      predict_fn, score_fn = member(m)
      results = self._metrics(step, predict_fn, score_fn)
      results.update(self._teacher_forced(trainable, frozen, m))
      members.append(results)
    vote = lambda ds, model_feature_shapes=None: [
        (i, r) for (i, _), r in zip(all_decodes(ds), ensemble.majority_vote(
            np.stack([r for _, r in all_decodes(ds)])))]
    mean = lambda ds, model_feature_shapes=None: [
        (i, float(s)) for (i, _), s in zip(all_scores(ds), ensemble.mean_score(
            np.stack([s for _, s in all_scores(ds)])))]
    return {"members": members, **ensemble.summarize(members),
            "ensemble": self._metrics(step, vote, mean)}

  def evaluate(self, trainable: Params, frozen: Params, step: int,
               prompt_id: Optional[int] = None) -> dict[str, float]:
    """Runs every eval task with the given prompt(s).

    Args:
      trainable, frozen: the two halves of the params.
      step: recorded with seqio's logs.
      prompt_id: with a prompt bank, the prompt every example uses.

    Returns:
      {"<task>/<metric>": value} plus `<task>/loss_per_token` and
      `<task>/token_accuracy` (teacher-forced).
    """
    if self.model.num_prompts > 1 and prompt_id is None and self.task_prompt_ids is None:
      raise ValueError(f"the model's prompt bank holds {self.model.num_prompts} prompts; "
                       "expected the prompt_id to evaluate.")
    params = self._placed(tree.merge(trainable, frozen))
    results = self._metrics(step, self._predict_fn(params, prompt_id),
                            self._score_fn(params, prompt_id))
    results.update(self._teacher_forced(trainable, frozen, prompt_id))
    return results


  def prediction_rows(self, trainable: Params, frozen: Params,
                      prompt_id: Optional[int] = None) -> list[dict]:
    """Per-example records of the last `evaluate` / `evaluate_ensemble`.

    Each: {"task", "index", "input", "target", "prediction", "score"} where
    score is the model's log-likelihood of its own prediction (teacher forced;
    for an ensemble, of the voted prediction, by each member; the mean). An
    ensemble's record also has "members": each member's prediction.
    """
    params = self._placed(tree.merge(trainable, frozen))
    k = self.model.num_prompts
    rows = []
    for task, decodes in self.last_decodes.items():
      if task is None or not decodes:
        continue
      vocab = seqio.get_mixture_or_task(task).output_features["targets"].vocabulary
      examples = list(self._seqio.cached_task_datasets[task].as_numpy_iterator())
      encoded = {int(i): f["encoder_input_tokens"] for i, f in
                 self._seqio.cached_model_datasets[task].as_numpy_iterator()}
      ensembled = next(iter(decodes.values())).ndim == 2
      for start in range(0, len(examples), self.batch_size):
        chunk = list(range(start, min(start + self.batch_size, len(examples))))
        picked = {i: (ensemble.majority_vote(decodes[i][None])[0] if ensembled else decodes[i])
                  for i in chunk}
        enc = np.stack([encoded[i] for i in chunk]).astype(np.int32)
        targets = _eos_padded([picked[i] for i in chunk], self.eos_id)
        batch = {"encoder_input_tokens": enc, "decoder_target_tokens": targets,
                 "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0)))}
        if k > 1:
          ids = (np.tile(np.arange(k, dtype=np.int32), len(chunk)) if ensembled
                 else np.full(len(chunk), self._prompt_id(task, prompt_id), np.int32))
          reps = k if ensembled else 1
          batch = {f: np.repeat(v, reps, axis=0) for f, v in batch.items()}
          batch["prompt_ids"] = ids
        scores = np.asarray(self._score(params, batch))
        scores = scores.reshape(len(chunk), -1).mean(axis=1)
        for j, i in enumerate(chunk):
          ex = examples[i]
          row = {"task": task, "index": i, "input": _text(ex.get("inputs_pretokenized")),
                 "target": _text(ex.get("targets_pretokenized")),
                 "prediction": vocab.decode([int(t) for t in picked[i]]),
                 "score": float(scores[j])}
          if ensembled:
            row["members"] = [vocab.decode([int(t) for t in r]) for r in decodes[i]]
          rows.append(row)
    return rows


def _text(value) -> Optional[str]:
  if value is None:
    return None
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _eos_padded(decodes, eos_id: int) -> np.ndarray:
  """Decoded rows as targets: up to and including EOS, then 0."""
  out = np.zeros((len(decodes), len(decodes[0])), np.int32)
  for i, row in enumerate(decodes):
    row = np.asarray(row)
    ends = np.flatnonzero(row == eos_id)
    keep = ends[0] + 1 if len(ends) else len(row)
    out[i, :keep] = row[:keep]
  return out
