"""Layer-by-layer params <-> the stacked layout of a model with `scan_layers`.

Checkpoints (Hugging Face, T5X) and every loader hold a stack's layers one by
one: `encoder/layers_0/mlp/wo/kernel`, `encoder/layers_1/...`. A model built
with `T5Config.scan_layers` runs each stack's layers as one `nn.scan` and
reads them stacked on `SCAN_AXIS`, as T5X's scalable_t5 does:
`encoder/layers/mlp/wo/kernel` of shape [F, L, D]. Only the layers change;
embeddings, norms, relative-position tables and prompts keep their paths.
"""
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning import tree
from prompt_tuning.models.config import T5Config

Params = Any
SCAN_AXIS = 1  # T5X's param_scan_axis
SCAN_AXIS_NAME = "layers"  # the logical axis the stacked params get
_STACKS = (("encoder", "num_encoder_layers"), ("decoder", "num_decoder_layers"))


def _stack_fn(leaves):
  # Keep device arrays on device (and their dtype); numpy stays numpy.
  return jnp.stack if any(isinstance(x, jax.Array) for x in leaves) else np.stack


def is_stacked(params: Mapping) -> bool:
  """Whether `params` are in the scanned layout (`<stack>/layers/...` paths)."""
  return any(re.match(r"(encoder|decoder)/layers/", p) for p in tree.flatten(params))


def stack_layers(params: Mapping, config: T5Config) -> dict:
  """Layer-by-layer params -> the `scan_layers` layout.

  Args:
    params: a param tree with `<stack>/layers_<i>/...` for i < the config's
      layer count.
    config: gives the layer counts.

  Returns:
    The same tree with each stack's layers stacked on `SCAN_AXIS`.

  Raises:
    ValueError: a layer's param is missing or has another shape than layer 0's.
  """
  flat = tree.flatten(params)
  out = {p: v for p, v in flat.items()
         if not re.match(r"(encoder|decoder)/layers_\d+/", p)}
  for stack, count_field in _STACKS:
    count = getattr(config, count_field)
    names = sorted(p[len(f"{stack}/layers_0/"):] for p in flat
                   if p.startswith(f"{stack}/layers_0/"))
    for name in names:
      paths = [f"{stack}/layers_{i}/{name}" for i in range(count)]
      missing = [p for p in paths if p not in flat]
      if missing:
        raise ValueError(f"cannot stack {stack} layers for scan_layers: {missing[0]} is "
                         f"missing (expected {count} layers, {count_field}={count}).")
      leaves = [flat[p] for p in paths]
      shapes = {tuple(np.shape(x)) for x in leaves}
      if len(shapes) > 1:
        raise ValueError(f"cannot stack {stack}/layers_*/{name}: the layers' shapes "
                         f"differ ({sorted(shapes)}); expected one shape.")
      out[f"{stack}/layers/{name}"] = _stack_fn(leaves)(leaves, axis=SCAN_AXIS)
    extra = sorted(p for p in flat if re.match(rf"{stack}/layers_(\d+)/", p)
                   and int(re.match(rf"{stack}/layers_(\d+)/", p).group(1)) >= count)
    if extra:
      raise ValueError(f"cannot stack {stack} layers: {extra[0]} is beyond "
                       f"{count_field}={count}.")
  return tree.unflatten(out)


def unstack_layers(params: Mapping, config: T5Config) -> dict:
  """The `scan_layers` layout -> layer-by-layer params (the inverse of `stack_layers`)."""
  flat = tree.flatten(params)
  out = {}
  for path, value in flat.items():
    match = re.match(r"(encoder|decoder)/layers/(.*)", path)
    if not match:
      out[path] = value
      continue
    stack, name = match.groups()
    count = getattr(config, dict(_STACKS)[stack])
    if np.ndim(value) <= SCAN_AXIS or np.shape(value)[SCAN_AXIS] != count:
      raise ValueError(f"{path} has shape {tuple(np.shape(value))}; expected the "
                       f"{count} {stack} layers on axis {SCAN_AXIS}.")
    for i in range(count):
      index = (slice(None),) * SCAN_AXIS + (i,)
      out[f"{stack}/layers_{i}/{name}"] = value[index]
  return tree.unflatten(out)


def to_layout(params: Mapping, config: T5Config) -> dict:
  """`params` in the layout `config` runs with (stacked iff `config.scan_layers`)."""
  stacked = is_stacked(params)
  if config.scan_layers and not stacked:
    return stack_layers(params, config)
  if stacked and not config.scan_layers:
    return unstack_layers(params, config)
  return dict(params)
