"""Multi-task prompts (`prompts.multitask`): one shared prompt and per-task parts.

Each mode's bank is checked against the same prompts built by hand in numpy (loops over
tasks and positions, not the library's einsums); then its init, its params' shapes and
refusals, and the model prompt that trains the shared part and only the selected tasks.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.prompts import initializers, multitask as mt, prompt as prompt_lib
from prompt_tuning.prompts import spec as spec_lib

MT_TASKS = ("a", "b", "c")
MT_D = 6


def _mt_params(spec, length=4, seed=0):
  rng = np.random.default_rng(seed)
  return {k: rng.normal(size=s).astype(np.float32) for k, s in spec.shapes(length, MT_D).items()}


@pytest.mark.parametrize("mode", mt.MODES)
def test_each_mode_composes_the_prompts_built_by_hand(mode):
  spec = mt.MultiTaskSpec(MT_TASKS, mode, task_length=2, shared_features=3 if mode == "project"
                          else None, rank=2)
  p = _mt_params(spec)
  got = np.asarray(mt.compose(spec, p))
  want = []
  for k in range(len(MT_TASKS)):
    if mode == "separate":
      one = p["prompt"][k]
    elif mode == "add":
      one = p["shared_prompt"] + p["task_prompts"][k]
    elif mode == "concat":
      one = np.concatenate([p["shared_prompt"], p["task_prompts"][k]])
    elif mode == "project":  # each shared position through task k's affine map
      one = np.stack([row @ p["task_kernel"][k] + p["task_bias"][k]
                      for row in p["shared_prompt"]])
    else:  # low_rank: elementwise times the rank-2 product
      cols, rows = p["task_cols"][k], p["task_rows"][k]
      one = p["shared_prompt"] * np.array([[sum(cols[i, r] * rows[r, j] for r in range(2))
                                            for j in range(MT_D)] for i in range(4)])
    want.append(one)
  np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-6)
  assert got.shape == (3, spec.prompt_length(4), MT_D)
  assert spec.shared_length_of(spec.prompt_length(4)) == 4
  # float32 whatever the params' dtype (bfloat16 here).
  half = mt.compose(spec, {k: jnp.asarray(v, jnp.bfloat16) for k, v in p.items()})
  assert half.dtype == jnp.float32
  prompts = mt.task_prompts(spec, p)
  assert list(prompts) == list(MT_TASKS)
  np.testing.assert_array_equal(prompts["b"], got[1])


@pytest.mark.parametrize("mode", mt.MODES)
def test_each_mode_measures_and_accepts_its_own_params(mode):
  spec = mt.MultiTaskSpec(MT_TASKS, mode, task_length=2, rank=2)
  p = _mt_params(spec, length=5)
  assert spec.shared_length(p) == 5
  spec.check(p, MT_D)  # its own params, as they are
  # Without task_length, concat's task part is as long as the shared one: P = 2 P_s.
  halves = mt.MultiTaskSpec(MT_TASKS, mode)
  assert halves.prompt_length(4) == (8 if mode == "concat" else 4)
  assert halves.shared_length_of(halves.prompt_length(4)) == 4
  assert type(halves.shared_length_of(8)) is int


def _fill(rng, shape, table):
  return np.asarray(jax.random.uniform(rng, shape, minval=-0.5, maxval=0.5))


@pytest.mark.parametrize("mode", ["add", "project", "low_rank"])
def test_every_task_starts_at_the_shared_prompt(mode):
  spec = mt.MultiTaskSpec(MT_TASKS, mode, rank=3)
  table = np.random.default_rng(1).normal(size=(30, MT_D)).astype(np.float32)
  p = mt.init_params(spec, 4, _fill, jax.random.PRNGKey(0), table)
  bank = np.asarray(mt.compose(spec, p))
  for k in range(3):
    np.testing.assert_allclose(bank[k], p["shared_prompt"], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(p["shared_prompt"], _fill(jax.random.PRNGKey(0), (4, MT_D), table))


def _from_table(seen):
  """An init that reads the table: rows picked by the key, in the table's dtype (the dtype
  it was handed is recorded in `seen`)."""
  def init(rng, shape, table):
    seen.append(table.dtype)
    rows = np.asarray(jax.random.randint(rng, (shape[0],), 0, table.shape[0]))
    return table[rows].astype(np.float64)
  return init


@pytest.mark.parametrize("mode,shared_features", [(m, 3) for m in mt.MODES] + [("project", None)])
def test_init_params_are_float32_and_the_values_built_by_hand(mode, shared_features):
  # shared_features=3 matters to "project" alone (a narrower shared prompt: random, not
  # the init's); every other mode ignores it.
  spec = mt.MultiTaskSpec(MT_TASKS, mode, task_length=2, shared_features=shared_features,
                          rank=4)
  table = np.random.default_rng(2).normal(size=(30, MT_D))  # float64, as numpy makes it
  key, seen = jax.random.PRNGKey(7), []
  p = mt.init_params(spec, 3, _from_table(seen), key, table)
  assert set(seen) <= {np.dtype(np.float32)}  # the init sees a float32 table
  assert {n: v.shape for n, v in p.items()} == spec.shapes(3, MT_D)
  assert {v.dtype for v in p.values()} == {np.dtype(np.float32)}

  def made(k, length):
    rows = np.asarray(jax.random.randint(k, (length,), 0, 30))
    return table.astype(np.float32)[rows]
  fold = jax.random.fold_in
  if mode == "separate":  # task k from fold_in(key, k), as a bank's members
    want = {"prompt": np.stack([made(fold(key, k), 3) for k in range(3)])}
  elif mode == "project" and shared_features == 3:
    kernel = np.asarray(jax.random.normal(fold(key, 1), (3, MT_D)) / np.sqrt(3), np.float32)
    want = {"shared_prompt": np.asarray(jax.random.uniform(key, (3, 3), minval=-0.5,
                                                           maxval=0.5)),
            "task_kernel": np.stack([kernel] * 3), "task_bias": np.zeros((3, MT_D))}
  else:
    want = {"shared_prompt": made(key, 3)}
    if mode == "add":
      want["task_prompts"] = np.zeros((3, 3, MT_D))
    elif mode == "concat":  # task k's part from fold_in(key, k + 1), P_t = 2
      want["task_prompts"] = np.stack([made(fold(key, k + 1), 2) for k in range(3)])
    elif mode == "project":
      want |= {"task_kernel": np.stack([np.eye(MT_D)] * 3), "task_bias": np.zeros((3, MT_D))}
    else:  # low_rank, r = 4: every entry 1 / sqrt(4), so each product is 1
      want |= {"task_cols": np.full((3, 3, 4), 0.5), "task_rows": np.full((3, 4, MT_D), 0.5)}
  for name, value in want.items():
    np.testing.assert_allclose(p[name], value, rtol=1e-6, atol=0, err_msg=name)


def test_concat_and_separate_start_with_distinct_task_prompts():
  table = np.zeros((30, MT_D), np.float32)
  for mode in ("concat", "separate"):
    spec = mt.MultiTaskSpec(MT_TASKS, mode, task_length=2)
    bank = np.asarray(mt.compose(spec, mt.init_params(spec, 4, _fill, jax.random.PRNGKey(0),
                                                      table)))
    assert bank.shape == (3, spec.prompt_length(4), MT_D)
    assert not np.allclose(bank[0], bank[1]) and not np.allclose(bank[1], bank[2])


def test_the_model_prompt_trains_shared_and_only_the_selected_tasks():
  spec = spec_lib.multitask_prompt(mt.MultiTaskSpec(MT_TASKS, "add"), 4)
  module = prompt_lib.Prompt(spec)
  params = {k: jnp.asarray(v) for k, v in _mt_params(spec.multitask).items()}
  ids = jnp.array([0, 2, 0])

  def loss(p):
    return jnp.sum(module.apply({"params": p}, MT_D, 3, ids) ** 2)
  grads = jax.grad(loss)(params)
  assert np.all(np.asarray(grads["task_prompts"][1]) == 0)  # no example of task b
  assert np.any(np.asarray(grads["task_prompts"][0]) != 0)
  assert np.any(np.asarray(grads["task_prompts"][2]) != 0)
  assert np.any(np.asarray(grads["shared_prompt"]) != 0)
  out = module.apply({"params": params}, MT_D, 3, ids)
  np.testing.assert_allclose(out[1], params["shared_prompt"] + params["task_prompts"][2],
                             rtol=1e-6)
  # Params of another mode are refused by name.
  with pytest.raises(ValueError, match="expected the 'add' multi-task params"):
    module.apply({"params": {"prompt": jnp.zeros((3, 4, MT_D))}}, MT_D, 3, ids)


def test_bad_multitask_specs_are_refused_by_name():
  with pytest.raises(ValueError, match=r"names \['a'\] more than once"):
    mt.MultiTaskSpec(("a", "b", "a"))
  with pytest.raises(ValueError, match="mode='sum'; expected one of"):
    mt.MultiTaskSpec(MT_TASKS, "sum")
  with pytest.raises(ValueError, match="rank=0"):
    mt.MultiTaskSpec(MT_TASKS, "low_rank", rank=0)
  for tasks in ((), ("a", ""), ("a", 3)):
    with pytest.raises(ValueError, match="expected one or more task names"):
      mt.MultiTaskSpec(tasks)
  for name, bad in (("task_length", 0), ("task_length", 2.0), ("shared_features", 0),
                    ("shared_features", "3")):
    with pytest.raises(ValueError, match=rf"MultiTaskSpec.{name}={bad!r}; expected an int"):
      mt.MultiTaskSpec(MT_TASKS, "concat", **{name: bad})
  one = mt.MultiTaskSpec(["a", "b"], "concat", task_length=1, shared_features=1)
  assert one.tasks == ("a", "b") and hash(one) == hash(mt.MultiTaskSpec(("a", "b"), "concat",
                                                                        task_length=1,
                                                                        shared_features=1))
  with pytest.raises(ValueError, match="one prompt per task"):
    spec_lib.PromptSpec(length=4, num_prompts=2, multitask=mt.MultiTaskSpec(MT_TASKS))
  spec = mt.MultiTaskSpec(MT_TASKS)
  assert [spec.task_id(t) for t in ("c", "a", "b")] == [2, 0, 1]
  assert mt.tasks_of(["c", "a"], spec, "x") == {"c": 2, "a": 0}
  with pytest.raises(ValueError, match=r"task 'd' has no prompt .* \['a', 'b', 'c'\]"):
    spec.task_id("d")
  with pytest.raises(ValueError, match=r"tasks \['d'\] have no prompt"):
    mt.tasks_of(["a", "d"], spec, "MIXTURE_OR_TASK_NAME='m'")
  good = _mt_params(spec)
  with pytest.raises(ValueError, match="^multi-task prompt: params of shapes"):
    spec.check({**good, "task_prompts": good["task_prompts"][:2]}, MT_D)
  assert mt.MultiTaskSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_a_fresh_multitask_prompt_is_float32_uniform_with_the_bank_axes():
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  spec = spec_lib.multitask_prompt(mt.MultiTaskSpec(MT_TASKS, "add"), 4)
  boxed = prompt_lib.Prompt(spec).init(jax.random.PRNGKey(0), MT_D, 2, jnp.array([0, 1]))
  axes = nn.get_partition_spec(boxed)["params"]
  assert tuple(axes["task_prompts"]) == (spec_lib.BANK_AXIS, spec_lib.LENGTH_AXIS,
                                         spec_lib.EMBED_AXIS)
  assert tuple(axes["shared_prompt"]) == (spec_lib.LENGTH_AXIS, spec_lib.EMBED_AXIS)
  for value in nn.unbox(boxed)["params"].values():
    assert value.dtype == jnp.float32
    assert 0.3 < float(jnp.abs(value).max()) <= 0.5  # U[-0.5, 0.5]


def test_a_one_task_multitask_prompt_needs_no_ids_and_names_its_path_in_errors():
  init = initializers.random_uniform()
  spec = spec_lib.multitask_prompt(mt.MultiTaskSpec(("only",), "add"), 4, init=init)
  assert spec.init is init and not spec.is_bank
  module = prompt_lib.Prompt(spec)
  params = {k: jnp.asarray(v) for k, v in _mt_params(spec.multitask, seed=3).items()}
  out = module.apply({"params": params}, MT_D, 2)  # no prompt_ids for one prompt
  np.testing.assert_allclose(out[1], params["shared_prompt"] + params["task_prompts"][0],
                             rtol=1e-6)
  with pytest.raises(ValueError, match=r"^encoder/prompt/prompt: params \['shared_prompt'\]"):
    module.apply({"params": {"shared_prompt": params["shared_prompt"]}}, MT_D, 2)
