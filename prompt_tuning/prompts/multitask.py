"""Multi-task prompts: one shared prompt and a small task-specific part per task.

A `MultiTaskSpec` names the tasks of a multi-task run (task k is bank row k)
and how each task's prompt is made from the trained parameters, which live
under the stack's prompt scope (`encoder/prompt/...`) instead of the single
`encoder/prompt/prompt`:

  separate   prompt_k = tasks[k]                    no sharing: a [K, P, D] bank
  add        prompt_k = shared + tasks[k]           shared [P, D], tasks [K, P, D]
  concat     prompt_k = [shared; tasks[k]]          shared [P_s, D], tasks [K, P_t, D]
  project    prompt_k = shared @ kernel[k] + bias[k]
                                                    shared [P, D_s], kernel [K, D_s, D]
  low_rank   prompt_k = shared * (cols[k] @ rows[k])
                                                    shared [P, D], cols [K, P, r],
                                                    rows [K, r, D]

add, concat and project are google-research/prompt-tuning's multi-task prompts
(shared and task prompts joined by addition, along the length, or by a
task-specific affine map of the shared prompt); low_rank is the multiplicative
rank-r update of multitask prompt tuning (Wang et al. 2023; PEFT's
MULTITASK_PROMPT_TUNING). `compose` turns the parameters into the [K, P, D]
bank the model selects from with each example's `prompt_ids` (its task id);
`task_prompts` splits that bank into one [P, D] prompt per task, the files a
multi-task run exports: each serves alone like any single-task prompt.

Dimension letters: K tasks, P prompt length, P_s / P_t shared / task length,
D d_model, D_s shared width, r rank.
"""
import dataclasses
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("separate", "add", "concat", "project", "low_rank")
# (name, logical axes) of each mode's params under the prompt scope; the bank and
# the task axes are never partitioned (see prompt_tuning.prompts.spec).
_BANK, _LENGTH, _EMBED = "prompt_bank", "prompt", "prompt_embed"
PARAMS = {
    "separate": (("prompt", (_BANK, _LENGTH, _EMBED)),),
    "add": (("shared_prompt", (_LENGTH, _EMBED)), ("task_prompts", (_BANK, _LENGTH, _EMBED))),
    "concat": (("shared_prompt", (_LENGTH, _EMBED)),
               ("task_prompts", (_BANK, _LENGTH, _EMBED))),
    "project": (("shared_prompt", (_LENGTH, _EMBED)), ("task_kernel", (_BANK, _EMBED, _EMBED)),
                ("task_bias", (_BANK, _EMBED))),
    "low_rank": (("shared_prompt", (_LENGTH, _EMBED)), ("task_cols", (_BANK, _LENGTH, None)),
                 ("task_rows", (_BANK, None, _EMBED))),
}


@dataclasses.dataclass(frozen=True)
class MultiTaskSpec:
  """The tasks of a multi-task prompt and how shared and task parts join.

  Attributes:
    tasks: K task names; an example of task `tasks[k]` uses prompt k.
    mode: one of MODES (see the module doc).
    task_length: P_t, the task part's length with "concat" (None: the shared
      length).
    shared_features: D_s, the shared prompt's width with "project" (None: D).
    rank: r, the rank of each task's update with "low_rank".
  """
  tasks: tuple = ()
  mode: str = "add"
  task_length: Optional[int] = None
  shared_features: Optional[int] = None
  rank: int = 1

  def __post_init__(self):
    tasks = tuple(self.tasks)
    object.__setattr__(self, "tasks", tasks)
    if not tasks or not all(isinstance(t, str) and t for t in tasks):
      raise ValueError(f"MultiTaskSpec.tasks={self.tasks!r}; expected one or more task names.")
    twice = sorted({t for t in tasks if tasks.count(t) > 1})
    if twice:
      raise ValueError(f"MultiTaskSpec.tasks names {twice} more than once; expected each task "
                       "once (task k is prompt k of the bank).")
    if self.mode not in MODES:
      raise ValueError(f"MultiTaskSpec.mode={self.mode!r}; expected one of {list(MODES)}.")
    for name in ("task_length", "shared_features"):
      value = getattr(self, name)
      if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f"MultiTaskSpec.{name}={value!r}; expected an int >= 1 or None.")
    if not isinstance(self.rank, int) or self.rank < 1:
      raise ValueError(f"MultiTaskSpec.rank={self.rank!r}; expected an int >= 1.")

  @property
  def num_tasks(self) -> int:
    return len(self.tasks)

  def prompt_length(self, length: int) -> int:
    """P, the length of each task's prompt, from PROMPT_LENGTH (the shared length)."""
    return length + (self.task_length or length) if self.mode == "concat" else length

  def shared_length_of(self, prompt_length: int) -> int:
    """PROMPT_LENGTH (P_s) from each task's composed length P (`prompt_length`'s inverse)."""
    if self.mode != "concat":
      return prompt_length
    return prompt_length // 2 if self.task_length is None else prompt_length - self.task_length

  def task_id(self, task: str) -> int:
    """The prompt id of `task`; a task without a prompt is an error naming the tasks."""
    if task not in self.tasks:
      raise ValueError(f"task {task!r} has no prompt in the multi-task bank; its tasks are "
                       f"{list(self.tasks)}.")
    return self.tasks.index(task)

  def shapes(self, length: int, d_model: int) -> dict:
    """{param name: shape} of the trained params, from the shared length and D."""
    k, d = self.num_tasks, int(d_model)
    d_s = self.shared_features or d
    return {
        "separate": {"prompt": (k, length, d)},
        "add": {"shared_prompt": (length, d), "task_prompts": (k, length, d)},
        "concat": {"shared_prompt": (length, d),
                   "task_prompts": (k, self.task_length or length, d)},
        "project": {"shared_prompt": (length, d_s), "task_kernel": (k, d_s, d),
                    "task_bias": (k, d)},
        "low_rank": {"shared_prompt": (length, d), "task_cols": (k, length, self.rank),
                     "task_rows": (k, self.rank, d)},
    }[self.mode]

  def shared_length(self, params: Mapping[str, Any]) -> int:
    """The shared (PROMPT_LENGTH) length of a set of this spec's params."""
    first = params["prompt" if self.mode == "separate" else "shared_prompt"]
    return int(np.shape(first)[-2])

  def check(self, params: Mapping[str, Any], d_model: int, where: str = "") -> None:
    """Raises ValueError unless `params` are exactly this spec's, with its shapes."""
    where = where or "multi-task prompt"
    found = {name: tuple(np.shape(v)) for name, v in params.items()}
    names = [name for name, _ in PARAMS[self.mode]]
    if sorted(found) != sorted(names):
      raise ValueError(f"{where}: params {sorted(found)}; expected the {self.mode!r} "
                       f"multi-task params {names}.")
    want = self.shapes(self.shared_length(params), d_model)
    if found != want:
      raise ValueError(f"{where}: params of shapes {found}; expected {want} ({self.mode!r}, "
                       f"{self.num_tasks} tasks, d_model={d_model}).")

  def to_json(self) -> dict:
    return dataclasses.asdict(self) | {"tasks": list(self.tasks)}

  @classmethod
  def from_json(cls, record: Mapping[str, Any]) -> "MultiTaskSpec":
    return cls(**{**record, "tasks": tuple(record["tasks"])})


def compose(spec: MultiTaskSpec, params: Mapping[str, Any]) -> jax.Array:
  """The [K, P, D] bank of per-task prompts from a multi-task prompt's params.

  Args:
    spec: the tasks and the mode.
    params: {name: array} of `spec.shapes(...)` (the prompt scope's params).

  Returns:
    float32 [K, P, D]: row k is task k's prompt.
  """
  p = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
  k = spec.num_tasks
  if spec.mode == "separate":
    return p["prompt"]
  shared = p["shared_prompt"]                                     # [P_s, D_s]
  if spec.mode == "add":
    return shared[None] + p["task_prompts"]                       # [K, P, D]
  if spec.mode == "concat":
    tiled = jnp.broadcast_to(shared, (k,) + shared.shape)          # [K, P_s, D]
    return jnp.concatenate([tiled, p["task_prompts"]], axis=1)    # [K, P_s + P_t, D]
  if spec.mode == "project":
    # [P, D_s] x [K, D_s, D] -> [K, P, D], plus each task's [D] bias.
    return jnp.einsum("ps,ksd->kpd", shared, p["task_kernel"]) + p["task_bias"][:, None]
  # low_rank: [K, P, r] @ [K, r, D] -> [K, P, D] multiplies the shared prompt.
  return shared[None] * jnp.einsum("kpr,krd->kpd", p["task_cols"], p["task_rows"])


def init_params(spec: MultiTaskSpec, length: int, shared_init, rng,
                table: np.ndarray) -> dict:
  """The first values of a multi-task prompt's params, float32.

  The shared prompt comes from `shared_init` (PROMPT_INIT: a
  `prompt_tuning.prompts.initializers` closure over the frozen embedding
  table) and every task starts from it: task prompts are zero with "add",
  the kernel is the identity and the bias zero with "project" (D_s = D; a
  narrower shared prompt gets a random kernel), and each low-rank product is
  1 with "low_rank". With "concat" the task parts come from `shared_init`
  too (task k with `fold_in(rng, k + 1)`); with "separate" every task's
  prompt does (`fold_in(rng, k)`, as a bank's members).

  Args:
    spec: the tasks and the mode.
    length: P_s, PROMPT_LENGTH.
    shared_init: (rng, (P, D), table) -> [P, D] values.
    rng: a PRNG key.
    table: [V, D] frozen embedding table.

  Returns:
    {param name: numpy float32 array of `spec.shapes(length, D)`}.
  """
  table = np.asarray(table, np.float32)
  d = table.shape[1]
  shapes = spec.shapes(length, d)
  make = lambda key, shape: np.asarray(shared_init(key, shape, table), np.float32)
  if spec.mode == "separate":
    return {"prompt": np.stack([make(jax.random.fold_in(rng, i), (length, d))
                                for i in range(spec.num_tasks)])}
  if spec.mode == "project" and spec.shared_features not in (None, d):
    shared = np.asarray(jax.random.uniform(rng, shapes["shared_prompt"], minval=-0.5,
                                           maxval=0.5), np.float32)
  else:
    shared = make(rng, (length, d))
  out = {"shared_prompt": shared}
  if spec.mode == "add":
    out["task_prompts"] = np.zeros(shapes["task_prompts"], np.float32)
  elif spec.mode == "concat":
    t = shapes["task_prompts"][1]
    out["task_prompts"] = np.stack([make(jax.random.fold_in(rng, i + 1), (t, d))
                                    for i in range(spec.num_tasks)])
  elif spec.mode == "project":
    d_s = shapes["task_kernel"][1]
    kernel = (np.eye(d, dtype=np.float32) if d_s == d else np.asarray(
        jax.random.normal(jax.random.fold_in(rng, 1), (d_s, d)) / np.sqrt(d_s), np.float32))
    out["task_kernel"] = np.broadcast_to(kernel, shapes["task_kernel"]).copy()
    out["task_bias"] = np.zeros(shapes["task_bias"], np.float32)
  else:  # low_rank: cols @ rows = 1 everywhere, so every task starts at the shared prompt
    scale = 1.0 / np.sqrt(spec.rank)
    out["task_cols"] = np.full(shapes["task_cols"], scale, np.float32)
    out["task_rows"] = np.full(shapes["task_rows"], scale, np.float32)
  return out


def task_prompts(spec: MultiTaskSpec, params: Mapping[str, Any]) -> dict:
  """{task name: [P, D] numpy float32 prompt}: the bank split per task."""
  bank = np.asarray(compose(spec, params))
  return {task: bank[i] for i, task in enumerate(spec.tasks)}


def tasks_of(names: Sequence[str], spec: MultiTaskSpec, where: str) -> dict:
  """{task: prompt id} for `names` (a mixture's tasks), each checked to have a prompt.

  Raises:
    ValueError: a task the spec has no prompt for (naming it, `where` and the
      spec's tasks).
  """
  missing = [n for n in names if n not in spec.tasks]
  if missing:
    raise ValueError(f"{where}: tasks {missing} have no prompt in the multi-task bank, whose "
                     f"tasks are {list(spec.tasks)}; expected every task of the mixture in "
                     "MultiTaskSpec.tasks.")
  return {n: spec.tasks.index(n) for n in names}
