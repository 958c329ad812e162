"""Which library prompt to start a target task from (SPoT, Vu et al. 2022).

Two rankings of a library's entries for a target task:
  - by prompt similarity to a prompt briefly tuned on the target (the task
    embeddings of `library.similarity`, both measures);
  - by each source prompt's zero-shot score on the target's validation split
    (`prompt_eval.evaluate_prompt`: the entries of one prompt length are one bank,
    evaluated in one batched pass).
`write_report` writes either as Markdown and JSON.
"""
import os
from typing import Any, Callable, Optional

import numpy as np

from prompt_tuning.checkpoints import run_dir
from prompt_tuning.eval import best as best_lib, prompt_eval
from prompt_tuning.library import similarity, store
from prompt_tuning.prompts.spec import PROMPT_PATH


def read_target(target: str, checkpoint="best") -> tuple[np.ndarray, Optional[str]]:
  """A target's [P, D] encoder prompt, and its run's INITIAL_CHECKPOINT_PATH if known.

  Args:
    target: a (short) run's MODEL_DIR, or any prompt file (`.npy`, ...).
    checkpoint: for a MODEL_DIR: "best", "latest" or a step.
  """
  if not os.path.exists(target):
    raise ValueError(f"--target={target!r}: no such file or directory; expected a run's "
                     "MODEL_DIR or a .npy prompt.")
  flat, where = run_dir.read_prompt_source(target, checkpoint)
  prompt = flat.get(PROMPT_PATH)
  if prompt is None or prompt.ndim != 2:
    raise ValueError(f"{where}: expected one [P, d_model] encoder prompt; found "
                     f"{[(k, np.shape(v)) for k, v in sorted(flat.items())]}.")
  path = None
  if run_dir.is_run_dir(target):
    try:
      path = run_dir.read_meta(target).get("initial_checkpoint_path")
    except ValueError:  # prompts but no orbax checkpoint: the model is not recorded
      path = None
  return prompt, path


def by_similarity(library_dir: str, target: np.ndarray,
                  initial_checkpoint_path: Optional[str] = None) -> list[dict]:
  """Entries ranked by average-token cosine to `target` ([P, D]), per-token beside it.

  Entries of another width (or, when given, another frozen model) are refused.

  Returns:
    [{"name", "task", "average", "per_token", "rank_per_token"}], by "average"
    descending.
  """
  found = store.entries(library_dir)
  if not found:
    raise ValueError(f"{library_dir}: an empty prompt library; expected entries to rank.")
  for entry in found:
    store.check_model(entry, initial_checkpoint_path, d_model=target.shape[1])
  prompts = {e.name: e.prompt() for e in found}
  tasks = {e.name: e.task for e in found}
  per_token = {n: r for r, (n, _) in enumerate(similarity.rank(target, prompts, "per_token"), 1)}
  return [{"name": name, "task": tasks[name], "average": value,
           "per_token": similarity.per_token_cosine(target, prompts[name]),
           "rank_per_token": per_token[name]}
          for name, value in similarity.rank(target, prompts, "average")]


def by_zero_shot(library_dir: str, *, initial_checkpoint_path: str, mixture_or_task_name: str,
                 metric: Optional[str] = None, output_dir: Optional[str] = None,
                 evaluate: Callable[..., dict] = prompt_eval.evaluate_prompt,
                 **eval_kwargs: Any) -> list[dict]:
  """Entries ranked by their score on the target task, no training.

  Args:
    library_dir: the library.
    initial_checkpoint_path: the frozen model (entries of another are refused).
    mixture_or_task_name: the target task.
    metric: the metric ranked ("<task>/<name>" or "<name>"; default the task's first).
    output_dir: where the evaluations' JSON and predictions go (default the library).
    evaluate: `prompt_eval.evaluate_prompt`, or its gin-configured version (the CLI).
    **eval_kwargs: more of its arguments (task_feature_lengths, batch_size,
      split, num_examples, register_tasks, ...).

  Returns:
    [{"name", "task", "metric", "score"}], by score descending.
  """
  found = store.entries(library_dir)
  if not found:
    raise ValueError(f"{library_dir}: an empty prompt library; expected entries to rank.")
  for entry in found:
    store.check_model(entry, initial_checkpoint_path)
  groups: dict = {}
  for entry in found:  # one bank per prompt length
    groups.setdefault(entry.prompt_length, []).append(entry)
  common = dict(eval_kwargs, initial_checkpoint_path=initial_checkpoint_path,
                mixture_or_task_name=mixture_or_task_name, model_dir=None,
                output_dir=output_dir or library_dir)
  rows = []
  for group in groups.values():
    if len(group) == 1:
      members = [evaluate(prompt_file=group[0].directory, prompt_files=None, **common)]
    else:
      members = evaluate(prompt_files=[e.directory for e in group], **common)["members"]
    for entry, results in zip(group, members):
      key = best_lib.resolve_metric(results, metric, [mixture_or_task_name])
      rows.append({"name": entry.name, "task": entry.task, "metric": key,
                   "score": float(results[key])})
  return sorted(rows, key=lambda r: (-r["score"], r["name"]))


def format_table(rows: list[dict]) -> str:
  """A Markdown table of ranked rows (the columns of the first row, rank first)."""
  if not rows:
    return "(no entries)"
  columns = list(rows[0])
  show = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
  lines = ["| rank | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  lines += [f"| {i} | " + " | ".join(show(r[c]) for c in columns) + " |"
            for i, r in enumerate(rows, 1)]
  return "\n".join(lines)


def write_report(rows: list[dict], output_dir: str, name: str, **header: Any) -> tuple[str, str]:
  """Writes `<name>.md` and `<name>.json` (atomically) into `output_dir`; returns both."""
  os.makedirs(output_dir, exist_ok=True)
  md, js = os.path.join(output_dir, f"{name}.md"), os.path.join(output_dir, f"{name}.json")
  lines = [f"# {name}", ""] + [f"- {k}: {v}" for k, v in header.items()] + ["", format_table(rows)]
  with open(md + ".tmp", "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(md + ".tmp", md)
  prompt_eval.write_json(js, {**header, "rows": rows})
  return md, js
