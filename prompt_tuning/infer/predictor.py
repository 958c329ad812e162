"""`infer`: frozen model + prompt(s) + inputs -> one JSON line of predictions per input.

One compiled forward serves every prompt of a bank: each batch mixes inputs of
any tasks, row b carrying the id of its own prompt, and each output line is
post-processed with its own task's label words. Modes (`DecodingConfig.mode`):

  greedy, beam, sample   decode; "score" is the model's log-likelihood of the
                         prediction (teacher forced)
  rank                   score every option (the task's label words, or
                         `options`) and take the best; "options" has each
                         option's log-likelihood; the prediction is always legal

With `ensemble=True` every input runs through every prompt of the bank (the
paper's section 6): "members" holds each prompt's prediction, "prediction" the
majority vote (rank mode: the option of highest mean log-likelihood).
"""
import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional, Sequence, Union

import jax
import numpy as np
import tqdm

from prompt_tuning.checkpoints import bank as bank_lib, frozen as frozen_lib
from prompt_tuning.data import inputs as data_inputs, verbalizers, vocab as vocab_lib
from prompt_tuning.eval import ensemble as ensemble_lib
from prompt_tuning.infer import records as records_lib
from prompt_tuning.models import Transformer, decoding, scoring

MODES = ("greedy", "beam", "sample", "rank")


@dataclasses.dataclass(frozen=True)
class DecodingConfig:
  """How `infer` turns inputs into answers (the configs/decoding/ files set these).

  Attributes:
    mode: one of MODES.
    num_beams, alpha: beam search (T5X's length penalty exponent).
    temperature, top_k, top_p, seed: sampling.
    options: rank mode's candidate answers for every input; None takes each
      input's task's label words.
  """
  mode: str = "greedy"
  num_beams: int = 4
  alpha: float = 0.6
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  seed: int = 0
  options: Optional[Sequence[str]] = None

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"DecodingConfig.mode={self.mode!r}; expected one of {MODES}.")
    if self.mode == "beam" and self.num_beams < 1:
      raise ValueError(f"num_beams={self.num_beams}; expected >= 1.")
    if self.options is not None:
      object.__setattr__(self, "options", tuple(self.options))
      if not self.options or not all(isinstance(o, str) and o for o in self.options):
        raise ValueError(f"options={self.options!r}; expected non-empty strings.")


def _encode(vocab, text: str, length: int, eos_id: int) -> list[int]:
  ids = list(vocab.encode(text))[:length - 1]
  return ids + [eos_id]


def _options_of(record: records_lib.Record, config: DecodingConfig) -> tuple:
  if config.options is not None:
    return config.options
  if record.task and verbalizers.has_verbalizer(record.task):
    return verbalizers.get_verbalizer(record.task).labels
  raise ValueError(f"{record.line}: rank mode needs options: the line names no task with "
                   f"label words (task={record.task!r}); set DecodingConfig.options "
                   "(RANK_OPTIONS).")


class _Runner:
  """The jitted calls, compiled once per batch shape."""

  def __init__(self, model: Transformer, config: DecodingConfig, target_length: int,
               eos_id: int):
    self.config = config
    self.predict = jax.jit(lambda params, tokens, ids, rng: decoding.predict(
        model, params, tokens, target_length, num_beams=config.num_beams if
        config.mode == "beam" else 1, alpha=config.alpha,
        temperature=config.temperature if config.mode == "sample" else 0.0,
        top_k=config.top_k, top_p=config.top_p, rng=rng, eos_id=eos_id, prompt_ids=ids))
    self.score = jax.jit(lambda params, batch: scoring.score(model, params, batch))
    self.rank = jax.jit(lambda params, tokens, options, ids: scoring.score_options(
        model, params, tokens, options, ids))


def _targets(rows: Sequence[Sequence[int]], length: int) -> np.ndarray:
  out = np.zeros((len(rows), length), np.int32)
  for i, row in enumerate(rows):
    out[i, :len(row)] = row[:length]
  return out


def _upto_eos(row: np.ndarray, eos_id: int) -> list[int]:
  ends = np.flatnonzero(row == eos_id)
  return row[:ends[0] + 1].tolist() if len(ends) else row[row > 0].tolist()


def infer(*, initial_checkpoint_path: str, prompts: Union[str, Sequence[str]],
          output_file: str, task_feature_lengths: dict, input_file: Optional[str] = None,
          mixture_or_task_name: Optional[str] = None, split: str = "validation",
          num_examples: Optional[int] = None, decoding_config: Optional[DecodingConfig] = None,
          batch_size: int = 32, model_config=None, prompt_combine: str = "prefix",
          frozen_params_dtype: str = "float32", vocabulary=None, checkpoint="best",
          ensemble: bool = False, register_tasks: Optional[Callable[[], Any]] = None,
          progress: bool = True) -> dict:
  """Runs the inputs through the frozen model with their prompts; writes JSON lines.

  Args:
    initial_checkpoint_path: the frozen model (INITIAL_CHECKPOINT_PATH).
    prompts: PROMPTS: one prompt source (a run, `.npy`, PEFT adapter, ...), a list
      of them, or a bank manifest / directory (`checkpoints.bank.load_bank`).
    output_file: INFER_OUTPUT_FILE (JSON lines; replaced atomically).
    task_feature_lengths: {"inputs": L, "targets": T}: inputs are cut to L
      tokens (EOS kept), answers to T.
    input_file: INFER_INPUT_FILE, a `.jsonl` or `.tsv` (see `infer.records`).
    mixture_or_task_name: instead, a registered task whose `split` is read.
    num_examples: the first N inputs only.
    decoding_config: the mode and its settings.
    batch_size: inputs per compiled call (rows: inputs x prompts with `ensemble`).
    model_config, prompt_combine, frozen_params_dtype: as for training.
    vocabulary: tokenizes input files (VOCABULARY); default: the frozen
      model's `spiece.model`. A task's own vocabulary serves its split.
    checkpoint: for run directories among `prompts`: "best", "latest", a step.
    ensemble: every input through every prompt, combined (see module doc).
    register_tasks: called first (REGISTER_TASKS).
    progress: show a progress bar.

  Returns:
    {"output_file", "inputs", "prompts", "seconds", "inputs_per_second"}.
  """
  config = decoding_config or DecodingConfig()
  if register_tasks is not None:
    register_tasks()
  lengths = data_inputs.check_feature_lengths(task_feature_lengths)
  if (input_file is None) == (mixture_or_task_name is None):
    raise ValueError("infer: expected exactly one of INFER_INPUT_FILE and "
                     "MIXTURE_OR_TASK_NAME (with INFER_SPLIT).")
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size}; expected >= 1.")
  frozen_lib.check_frozen_dtype(frozen_params_dtype)
  if input_file is not None:
    records = records_lib.read_file(input_file)[:num_examples]
  else:
    data_inputs.get_task(mixture_or_task_name)
    records = list(records_lib.read_task(mixture_or_task_name, split, lengths, num_examples))
    if not records:
      raise ValueError(f"{mixture_or_task_name}: the {split!r} split has no examples.")

  model_cfg, frozen = frozen_lib.load_frozen(initial_checkpoint_path, model_config,
                                             dropout_rate=0.0)
  bank = bank_lib.load_bank(prompts, checkpoint, d_model=model_cfg.emb_dim)
  encoder, decoder = bank.specs(prompt_combine)
  model = Transformer(model_cfg, encoder_prompt=encoder, decoder_prompt=decoder)
  params = frozen_lib.with_prompts(frozen_lib.cast_frozen(frozen, frozen_params_dtype),
                                   bank.params())
  k = len(bank)
  if ensemble and k < 2:
    raise ValueError(f"ensemble=True needs at least 2 prompts; {prompts!r} holds {k}.")
  ids = [0] * len(records)
  if k > 1 and not ensemble:
    for i, record in enumerate(records):
      if record.prompt is None:
        raise ValueError(f"{record.line}: the bank holds {k} prompts {bank.names}; expected "
                         'the line to name its "prompt" (or "task").')
      try:
        ids[i] = bank.index(record.prompt)
      except ValueError as e:
        raise ValueError(f"{record.line}: {e}") from e

  default_vocab = vocabulary
  if default_vocab is None and input_file is not None:
    default_vocab = vocab_lib.checkpoint_vocabulary("", initial_checkpoint_path)
  task_vocab = {}

  def vocab_of(record):
    if record.task and record.ids is not None:
      if record.task not in task_vocab:
        import seqio  # pylint: disable=import-outside-toplevel
        task_vocab[record.task] = seqio.get_mixture_or_task(
            record.task).output_features["targets"].vocabulary
      return task_vocab[record.task]
    return default_vocab

  eos_id = 1
  runner = _Runner(model, config, lengths["targets"], eos_id)
  reps = k if ensemble else 1
  member_ids = np.tile(np.arange(k, dtype=np.int32), batch_size) if ensemble else None
  start = time.time()
  out_lines = []
  bar = tqdm.tqdm(total=len(records), disable=not progress, desc="infer", dynamic_ncols=True)
  for first in range(0, len(records), batch_size):
    chunk = records[first:first + batch_size]
    n = len(chunk)
    vocabs = [vocab_of(r) for r in chunk]
    tokens = _targets([r.ids.tolist() if r.ids is not None
                       else _encode(v, r.input, lengths["inputs"], eos_id)
                       for r, v in zip(chunk, vocabs)], lengths["inputs"])
    tokens = np.pad(tokens, ((0, batch_size - n), (0, 0)))
    if ensemble:
      row_tokens, row_ids = np.repeat(tokens, k, axis=0), member_ids
    else:
      row_tokens = tokens
      row_ids = (np.pad(np.asarray(ids[first:first + n], np.int32), (0, batch_size - n))
                 if k > 1 else None)
    if config.mode == "rank":
      results = _rank(runner, params, chunk, vocabs, row_tokens, row_ids, lengths, eos_id,
                      batch_size, reps, config)
    else:
      rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), first)
      decoded = np.asarray(runner.predict(params, row_tokens, row_ids, rng))
      targets = _targets([_upto_eos(r, eos_id) for r in decoded], lengths["targets"])
      batch = {"encoder_input_tokens": row_tokens, "decoder_target_tokens": targets,
               "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0)))}
      if row_ids is not None:
        batch["prompt_ids"] = row_ids
      scores = np.asarray(runner.score(params, batch)).reshape(batch_size, reps)
      decoded = decoded.reshape(batch_size, reps, -1)
      results = []
      for j, vocab in enumerate(vocabs):
        texts = [vocab.decode(_upto_eos(r, eos_id)) for r in decoded[j]]
        if ensemble:
          voted = ensemble_lib.majority_vote(decoded[j][None])[0]
          member = next(m for m in range(k) if np.array_equal(decoded[j][m], voted))
          results.append({"prediction": texts[member], "score": float(scores[j, member]),
                          "members": texts})
        else:
          results.append({"prediction": texts[0], "score": float(scores[j, 0])})
    for record, result in zip(chunk, results):
      line = {"input": record.input}
      if record.target is not None:
        line["target"] = record.target
      if k > 1 and not ensemble:
        line["prompt"] = record.prompt
      line.update(result)
      if record.task and verbalizers.has_verbalizer(record.task):
        line["label"] = verbalizers.get_verbalizer(record.task).to_class(line["prediction"])
      out_lines.append(line)
    bar.update(n)
  bar.close()
  seconds = time.time() - start
  os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
  tmp = output_file + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for line in out_lines:
      f.write(json.dumps(line, ensure_ascii=False) + "\n")
  os.replace(tmp, output_file)
  return {"output_file": output_file, "inputs": len(records), "prompts": bank.names,
          "seconds": seconds, "inputs_per_second": len(records) / max(seconds, 1e-9)}


def _rank(runner, params, chunk, vocabs, row_tokens, row_ids, lengths, eos_id, batch_size,
          reps, config) -> list[dict]:
  """Scores every option of every row; options of fewer than C_max are masked."""
  options = [_options_of(r, config) for r in chunk]
  width = max(len(o) for o in options)
  targets = np.zeros((batch_size, width, lengths["targets"]), np.int32)
  for j, (opts, vocab) in enumerate(zip(options, vocabs)):
    targets[j, :len(opts)] = _targets([_encode(vocab, o, lengths["targets"], eos_id)
                                       for o in opts], lengths["targets"])
  if reps > 1:
    targets = np.repeat(targets, reps, axis=0)
  scores = np.asarray(runner.rank(params, row_tokens, targets, row_ids)).reshape(
      batch_size, reps, width)
  results = []
  for j, opts in enumerate(options):
    per_member = scores[j, :, :len(opts)]          # [reps, C]
    mean = per_member.mean(axis=0)                 # the ensemble's (or the one) score
    best = int(np.argmax(mean))
    result = {"prediction": opts[best], "score": float(mean[best]),
              "options": {o: float(s) for o, s in zip(opts, mean)}}
    if reps > 1:
      result["members"] = [opts[int(np.argmax(m))] for m in per_member]
    results.append(result)
  return results
