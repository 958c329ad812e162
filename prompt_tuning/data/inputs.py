"""Training batches from seqio, deterministic for a seed and resumable.

The stream is `seqio.get_dataset(..., shuffle=True, seed=RANDOM_SEED,
num_epochs=None)` through the encoder-decoder feature converter (no packing:
prompt tuning does not support packed sequences), batched with
`drop_remainder`. tf.data is kept deterministic, so the same seed gives the
same batches in the same order, and the data position of a checkpoint is just
how many batches were consumed: on resume the stream is rebuilt and that many
batches are skipped. Skipping replays the input pipeline (cheap next to a
model step, but it grows with the step; T5X instead checkpoints the tf.data
iterator, shuffle buffer included).

A multi-task run (`task_ids`) reads the same mixture with each example's task
id as a feature: every sub-task's examples carry a [1] int32 `task_id`, which
passes through the feature converter and arrives as the batch's `prompt_ids`
[B], the prompt of the bank each example trains. Sampling is the mixture's own
(its rates, sample function and seed), so the examples are exactly those of
the plain stream.
"""
import difflib
from typing import Iterator, Mapping, Optional

import numpy as np
import seqio
import tensorflow as tf

# The model features of seqio.EncDecFeatureConverter(pack=False).
MODEL_FEATURES = ("encoder_input_tokens", "decoder_input_tokens",
                  "decoder_target_tokens", "decoder_loss_weights")


def keep_tf_off_accelerators():
  """tf.data runs on the host; keep TensorFlow from taking GPU/TPU memory."""
  try:
    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")
  except (RuntimeError, ValueError):  # already initialised, or no such device type
    pass


def get_task(name: str):
  """The registered seqio Task or Mixture `name`.

  Raises:
    ValueError: naming MIXTURE_OR_TASK_NAME and the closest registered names.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"MIXTURE_OR_TASK_NAME={name!r}; expected a registered seqio "
                     "task or mixture name.")
  names = list(seqio.TaskRegistry.names()) + list(seqio.MixtureRegistry.names())
  if name not in names:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    raise ValueError(
        f"MIXTURE_OR_TASK_NAME={name!r} is not a registered seqio task or mixture "
        f"({len(names)} registered; closest: {close}). Were the tasks registered "
        "(e.g. prompt_tuning.data.tasks.register_tasks), and is the name spelled right?")
  return seqio.get_mixture_or_task(name)


TASK_ID = "task_id"


class TaskIdMixture(seqio.Mixture):
  """A seqio mixture (or one task) whose examples carry their task's `task_id` [1].

  Args:
    mixture_or_task: the registered Mixture or Task to read.
    task_ids: {sub-task name: prompt id}; every sub-task must have one.

  Raises:
    ValueError: a sub-task without an id (naming it and the tasks that have one).
  """

  def __init__(self, mixture_or_task, task_ids: Mapping[str, int]):
    subtasks = seqio.get_subtasks(mixture_or_task)
    missing = [t.name for t in subtasks if t.name not in task_ids]
    if missing:
      raise ValueError(f"{mixture_or_task.name}: tasks {missing} have no prompt in the "
                       f"multi-task bank, whose tasks are {list(task_ids)}; expected every "
                       "task of the mixture to have one.")
    if isinstance(mixture_or_task, seqio.Mixture):
      rates = [(t.name, mixture_or_task.get_rate(t)) for t in subtasks]
      super().__init__(mixture_or_task.name, rates, sample_fn=mixture_or_task._sample_fn)  # pylint: disable=protected-access
    else:
      super().__init__(mixture_or_task.name, [(mixture_or_task.name, 1.0)])
    self._task_ids = {t.name: int(task_ids[t.name]) for t in subtasks}

  def get_task_dataset(self, task, *args, **kwargs):
    ds = super().get_task_dataset(task, *args, **kwargs)
    task_id = tf.constant([self._task_ids[task.name]], tf.int32)

    @tf.autograph.experimental.do_not_convert
    def with_id(ex):
      return {**ex, TASK_ID: task_id}
    return ds.map(with_id)


def check_feature_lengths(task_feature_lengths: Mapping[str, int]) -> dict:
  lengths = dict(task_feature_lengths or {})
  if set(lengths) != {"inputs", "targets"} or not all(
      isinstance(v, int) and v > 0 for v in lengths.values()):
    raise ValueError(f"TASK_FEATURE_LENGTHS={task_feature_lengths!r}; expected "
                     "{'inputs': int > 0, 'targets': int > 0}.")
  return lengths


def fingerprint(name: str, split: str, task_feature_lengths: Mapping[str, int],
                batch_size: int, seed: int, num_shards: int = 1) -> dict:
  """What must not change across a resume for the data position to mean anything.

  `num_shards` (hosts reading distinct rows) is recorded only when > 1, so a
  one-host run's fingerprint is what it was before multi-host runs existed.
  """
  out = {"mixture_or_task_name": name, "split": split,
         "task_feature_lengths": dict(task_feature_lengths),
         "batch_size": int(batch_size), "seed": int(seed)}
  if num_shards != 1:
    out["num_shards"] = int(num_shards)
  return out


def train_batches(name: str, task_feature_lengths: Mapping[str, int], batch_size: int,
                  seed: int, split: str = "train", start_batch: int = 0,
                  use_cached: bool = False, shuffle: bool = True, shard_index: int = 0,
                  num_shards: int = 1, task_ids: Optional[Mapping[str, int]] = None
                  ) -> Iterator[dict[str, np.ndarray]]:
  """An endless, deterministic iterator of [B, ...] numpy batches.

  Args:
    name: seqio task or mixture.
    task_feature_lengths: {"inputs": L, "targets": T}; longer examples are
      truncated by seqio.
    batch_size: B, the rows this reader yields per batch (with several
      shards: BATCH_SIZE / num_shards); the last partial batch of an epoch is
      never formed (the stream repeats before batching).
    seed: shuffle and preprocessing seed.
    split: the split to train on.
    start_batch: batches to skip (the data position of a resumed run).
    use_cached: read seqio's offline cache instead of preprocessing.
    shuffle: shuffle examples (with `seed`).
    shard_index, num_shards: read only shard `shard_index` of `num_shards`
      (seqio's `ShardInfo`: by files where the source has enough, else every
      num_shards-th example); one per host in a multi-host run.
    task_ids: {sub-task name: prompt id} of a multi-task run (see the module
      doc); None: no ids.

  Yields:
    dicts of int32 [B, L] `encoder_input_tokens` and [B, T]
    `decoder_input_tokens`, `decoder_target_tokens`, `decoder_loss_weights`;
    with `task_ids` also [B] `prompt_ids`.
  """
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"shard_index={shard_index}, num_shards={num_shards}; expected "
                     "0 <= shard_index < num_shards.")
  keep_tf_off_accelerators()
  shard_info = seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None
  lengths = check_feature_lengths(task_feature_lengths)
  if task_ids is None:
    ds = seqio.get_dataset(
        get_task(name), lengths, feature_converter=seqio.EncDecFeatureConverter(pack=False),
        dataset_split=split, use_cached=use_cached, shuffle=shuffle, num_epochs=None,
        seed=int(seed), shard_info=shard_info, verbose=False)
  else:  # seqio.get_dataset's two steps, with the task id passed through
    ds = TaskIdMixture(get_task(name), task_ids).get_dataset(
        lengths, split=split, use_cached=use_cached, shuffle=shuffle, seed=int(seed),
        shard_info=shard_info, num_epochs=None, passthrough_features=[TASK_ID])
    spec = seqio.FeatureConverter.FeatureSpec(dtype=tf.int32, rank=1)
    ds = seqio.EncDecFeatureConverter(pack=False, passthrough_features={TASK_ID: spec})(
        ds, task_feature_lengths={**lengths, TASK_ID: 1})
  options = tf.data.Options()
  options.deterministic = True
  ds = ds.with_options(options).batch(batch_size, drop_remainder=True)
  if start_batch:
    ds = ds.skip(start_batch)
  ds = ds.prefetch(tf.data.AUTOTUNE)
  for batch in ds.as_numpy_iterator():
    out = {k: batch[k].astype(np.int32) for k in MODEL_FEATURES}
    if task_ids is not None:
      out["prompt_ids"] = batch[TASK_ID][:, 0].astype(np.int32)
    yield out


def count_tokens(batch: Mapping[str, np.ndarray]) -> int:
  """Non-padding input + target tokens in a batch (for tokens/s)."""
  return int(np.count_nonzero(batch["encoder_input_tokens"])
             + np.count_nonzero(batch["decoder_target_tokens"]))
