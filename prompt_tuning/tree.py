"""Parameter trees by "/"-joined paths: the one flatten / unflatten / split / merge.

A parameter tree is a nested dict whose leaves are arrays, and a path names a
leaf by its keys joined with "/", as T5X names parameters
(`encoder/layers_0/attention/query/kernel`). Everything that walks such a
tree (checkpoint readers, the trainable/frozen split, prompt export, the
optimizer's factoring rules) goes through these functions, built on
`flax.traverse_util`.
"""
import math
import re
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np
from flax import traverse_util

Tree = Mapping[str, Any]
SEP = "/"


def flatten(tree: Tree, is_leaf: Optional[Callable[[Any], bool]] = None) -> dict[str, Any]:
  """Nested dict -> {"a/b/c": leaf}, in sorted path order; empty sub-dicts vanish.

  Args:
    tree: nested mapping.
    is_leaf: marks mappings that are leaves themselves (e.g. a tensorstore
      spec dict inside a T5X checkpoint).
  """
  leaf_fn = None if is_leaf is None else (lambda _, value: is_leaf(value))
  flat = traverse_util.flatten_dict(_plain(tree, is_leaf), is_leaf=leaf_fn, sep=SEP)
  return dict(sorted(flat.items()))


def _plain(tree: Any, is_leaf) -> Any:
  """Mappings (FrozenDict, MappingProxy, ...) -> dicts, so flax walks them."""
  if isinstance(tree, Mapping) and not (is_leaf and is_leaf(tree)):
    return {str(k): _plain(v, is_leaf) for k, v in tree.items()}
  return tree


def unflatten(flat: Mapping[str, Any]) -> dict:
  """{"a/b/c": leaf} -> nested plain dicts (the inverse of `flatten`)."""
  return traverse_util.unflatten_dict(dict(flat), sep=SEP)


def split(tree: Tree, regex: str) -> tuple[dict, dict]:
  """Splits a tree into (leaves whose whole path matches `regex`, the rest).

  `re.fullmatch` is used, so `encoder/prompt/prompt` matches that path and
  nothing below or beside it. Either part may be empty ({}).
  """
  pattern = re.compile(regex)
  flat = flatten(tree)
  chosen = {p: v for p, v in flat.items() if pattern.fullmatch(p)}
  rest = {p: v for p, v in flat.items() if p not in chosen}
  return unflatten(chosen), unflatten(rest)


def merge(*trees: Tree) -> dict:
  """The union of trees with disjoint paths (the inverse of `split`).

  Raises:
    ValueError: a path is in more than one tree.
  """
  merged: dict = {}
  for tree in trees:
    flat = flatten(tree)
    both = sorted(set(flat) & set(merged))
    if both:
      raise ValueError(f"merge: paths {both} are in more than one tree; expected disjoint "
                       "trees (e.g. trainable and frozen params).")
    merged.update(flat)
  return unflatten(merged)


def to_numpy(tree: Any) -> Any:
  """A pytree of device arrays -> the same pytree of host numpy arrays."""
  return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def count(tree: Tree) -> int:
  """The number of scalars in every leaf of `tree` (arrays or shape-dtype structs)."""
  return int(sum(math.prod(getattr(leaf, "shape", ())) for leaf in jax.tree.leaves(tree)))
