"""One prompt, evaluated zero-shot on every MRQA domain: the paper's domain shift (section 5).

The paper tunes a prompt on SQuAD and reads its F1 on MRQA's out-of-domain
sets (Table 1), beside model tuning's. `evaluate_domains(...)` evaluates one
saved prompt (a run's MODEL_DIR, its best prompt by default) on each domain's
task (`prompt_eval.load_prompt_model` once, then `evaluate_loaded` per domain), on
the domain's own split (in domain: validation; out of domain: MRQA's dev sets,
TFDS's "test"), and writes the table, one row per domain:

  <output_dir>/domain_shift.md    Markdown: domain, task, split, examples, EM, F1
  <output_dir>/domain_shift.json  {"source", "checkpoint", "rows": [row, ...]}
  <output_dir>/<domain>/          each domain's metrics and per-example predictions

`output_dir` defaults to MODEL_DIR/eval/domain_shift. configs/runs/
mrqa_domain_shift.gin binds it after training (`prompt-tuning domain-shift`).
"""
import json
import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from prompt_tuning.checkpoints import run_dir
from prompt_tuning.data import mrqa
from prompt_tuning.eval import prompt_eval

# The paper's Table 1: SQuAD (in domain) and the six out-of-domain sets.
DEFAULT_DOMAINS: tuple[str, ...] = ("squad",) + mrqa.OUT_OF_DOMAIN
TABLE_NAME = "domain_shift"
COLUMNS = ("domain", "task", "split", "examples", "exact_match", "f1")


def _count_lines(path: str) -> int:
  with open(path, encoding="utf-8") as f:
    return sum(1 for _ in f)


def evaluate_domains(*, task_feature_lengths: Mapping[str, int], initial_checkpoint_path: str,
                     domains: Sequence[str] = DEFAULT_DOMAINS, model_dir: Optional[str] = None,
                     checkpoint: Union[str, int] = "best", prompt_file: Optional[str] = None,
                     model_config=None, prompt_combine: str = "prefix", batch_size: int = 32,
                     num_examples: Optional[int] = None, frozen_params_dtype: str = "float32",
                     output_dir: Optional[str] = None,
                     register_tasks: Optional[Callable[[], Any]] = None) -> list[dict]:
  """Evaluates one saved prompt on each MRQA domain; writes the table as Markdown and JSON.

  Args:
    task_feature_lengths, initial_checkpoint_path, model_config,
      prompt_combine, frozen_params_dtype, register_tasks: the run's values
      (as for `loop.train`); tasks are registered once, before the first domain.
    domains: MRQA domains by TFDS config name or title (`mrqa.get_domain`),
      one row each, in this order (default: SQuAD, then Table 1's six).
    model_dir, checkpoint, prompt_file: where the prompt is (see
      `prompt_eval.read_prompts`).
    batch_size: examples per decode call.
    num_examples: the first N examples of each domain only (None: all).
    output_dir: where the table goes (default MODEL_DIR/eval/domain_shift, or
      beside `prompt_file`).

  Returns:
    One row per domain: {"domain": title, "config", "task", "split",
    "in_domain", "examples", "exact_match", "f1"} (EM and F1 in percent, each
    the mean over examples of the max over the gold answers).

  Raises:
    ValueError: an unknown domain (with the closest names), a domain asked
      for twice, or no prompt to evaluate (from `prompt_eval.load_prompt_model`).
  """
  chosen = mrqa.get_domains(domains)
  if not chosen:
    raise ValueError(f"domains={list(domains)!r}; expected at least one MRQA domain, e.g. "
                     f"{list(DEFAULT_DOMAINS)}.")
  if output_dir is None:
    if prompt_file:
      output_dir = os.path.join(os.path.dirname(os.path.abspath(prompt_file)), TABLE_NAME)
    elif model_dir:
      output_dir = os.path.join(model_dir, run_dir.EVAL_DIR, TABLE_NAME)
    else:
      raise ValueError("evaluate_domains: model_dir=None and prompt_file=None; expected "
                       "a run's MODEL_DIR or a prompt file to evaluate.")
  if register_tasks is not None:
    register_tasks()
  # The prompt and the frozen model are read once, then evaluated on every domain.
  loaded = prompt_eval.load_prompt_model(
      initial_checkpoint_path=initial_checkpoint_path, model_dir=model_dir,
      checkpoint=checkpoint, prompt_file=prompt_file, model_config=model_config,
      prompt_combine=prompt_combine, frozen_params_dtype=frozen_params_dtype)
  rows = []
  for domain in chosen:
    where = os.path.join(output_dir, domain.config)
    results = prompt_eval.evaluate_loaded(
        loaded, mixture_or_task_name=domain.task, task_feature_lengths=task_feature_lengths,
        batch_size=batch_size, split=domain.split, num_examples=num_examples,
        output_dir=where)
    (predictions,) = [n for n in os.listdir(where) if n.endswith("_predictions.jsonl")]
    rows.append({"domain": domain.title, "config": domain.config, "task": domain.task,
                 "split": domain.split, "in_domain": domain.in_domain,
                 "examples": _count_lines(os.path.join(where, predictions)),
                 "exact_match": results[f"{domain.task}/exact_match"],
                 "f1": results[f"{domain.task}/f1"]})
  os.makedirs(output_dir, exist_ok=True)
  source = prompt_file or model_dir
  prompt_eval.write_json(os.path.join(output_dir, f"{TABLE_NAME}.json"),
                         {"source": source, "checkpoint": checkpoint, "rows": rows})
  with open(os.path.join(output_dir, f"{TABLE_NAME}.md"), "w", encoding="utf-8") as f:
    f.write(markdown(rows) + "\n")
  return rows


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
  """The rows as a Markdown table (EM and F1 to one decimal, in percent)."""
  lines = ["| domain | task | split | examples | EM | F1 |", "|---|---|---|---|---|---|"]
  for row in rows:
    name = row["domain"] + (" (in domain)" if row["in_domain"] else "")
    lines.append(f"| {name} | {row['task']} | {row['split']} | {row['examples']} | "
                 f"{row['exact_match']:.1f} | {row['f1']:.1f} |")
  return "\n".join(lines)


def read_table(output_dir: str) -> list[dict]:
  """The rows `evaluate_domains` wrote to `output_dir`."""
  with open(os.path.join(output_dir, f"{TABLE_NAME}.json"), encoding="utf-8") as f:
    return json.load(f)["rows"]
