"""The methods' params outside the model: make them, count them, merge and fold them.

- `init_adapter_params(model, frozen, rng)`: the method params a pretrained
  tree lacks, made without materialising the model (see its doc).
- `count_params(model)`: each method's params, from shapes only.
- `merge_lora(model, params)`: W + (alpha / r) A B into the frozen kernels.
- `fold_prefix(model, params)`: the prefix MLP evaluated once; its per-layer
  keys/values become the direct params an inference model reads.

Paths are "/"-joined (see `prompt_tuning.models.adapters` for the names);
every function takes params layer by layer or in the `scan_layers` layout,
whichever the model's config runs.
"""
import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning import tree
from prompt_tuning.models import adapter_layers, adapters as adapters_lib, scan
from prompt_tuning.models.t5 import Transformer, init_params
from prompt_tuning.prompts.spec import PROMPT_PATHS

Params = Any


def abstract_params(model: Transformer) -> dict:
  """{path: jax.ShapeDtypeStruct} of every param of `model`; nothing is allocated."""
  abstract = jax.eval_shape(functools.partial(init_params, model), jax.random.PRNGKey(0))
  return tree.flatten(abstract)


def method_paths(model: Transformer) -> list[str]:
  """Sorted paths of the model's method params (deep prompts: with the encoder prompt)."""
  spec = _adapters(model)
  return sorted(p for p in abstract_params(model) if spec.method_of(p))


def _adapters(model: Transformer) -> adapters_lib.AdapterSpec:
  if not isinstance(model, Transformer) or model.adapters is None:
    raise ValueError(f"expected a Transformer with an AdapterSpec; got {model!r:.200}.")
  return model.adapters


def init_fn(model: Transformer, paths: tuple):
  """The jitted `rng -> {path: value}` for `paths` of `model`'s init.

  The whole model's init is traced, but only `paths` are outputs, so XLA
  removes every other param's initialiser and the forward pass as dead code:
  an 11B model's adapter init allocates the adapter, never the model.
  """
  paths = tuple(paths)

  def init(rng):
    flat = tree.flatten(init_params(model, rng))
    return {p: flat[p] for p in paths}

  return jax.jit(init)


def init_adapter_params(model: Transformer, frozen: Mapping, rng) -> dict:
  """The method params `frozen` lacks, initialised as the model's own init does.

  Args:
    model: a `Transformer` with `adapters` (its config's layout, stacked or not).
    frozen: the pretrained params (nested), without the methods' params; prompts may
      be absent (they are made by the prompt initializers) or present.
    rng: PRNG key.

  Returns:
    Nested float32 params holding exactly the missing method params (LoRA A
    random and B zero, IA3 ones, prefix, deep prompts; a deep-prompt model's encoder
    prompt is left to the prompt initializers).

  Raises:
    ValueError: `frozen` lacks a pretrained param, holds one the model does
      not have, or has a wrong shape (each listed).
  """
  spec = _adapters(model)
  abstract = abstract_params(model)
  flat = tree.flatten(frozen)
  missing = [p for p in abstract if p not in flat and p not in PROMPT_PATHS
             and not spec.method_of(p)]
  unexpected = [p for p in flat if p not in abstract]
  shapes = [f"{p}: {tuple(np.shape(v))}, expected {abstract[p].shape}" for p, v in flat.items()
            if p in abstract and tuple(np.shape(v)) != abstract[p].shape]
  if missing or unexpected or shapes:
    lines = ["the frozen params do not fit the model with its adapters "
             f"({', '.join(spec.methods)}):"]
    for name, items in (("missing", missing), ("unexpected", unexpected),
                        ("wrong shape", shapes)):
      if items:
        lines.append(f"  {name} ({len(items)}): " + ", ".join(sorted(items)[:8])
                     + (" ..." if len(items) > 8 else ""))
    raise ValueError("\n".join(lines))
  wanted = tuple(sorted(p for p in abstract if p not in flat and p not in PROMPT_PATHS
                        and spec.method_of(p)))
  return tree.unflatten(jax.device_get(init_fn(model, wanted)(rng)))


def count_params(model: Transformer, inference: bool = False) -> dict[str, int]:
  """{method: number of its params}, from shapes only.

  Deep prompts count the encoder prompt too (the first layer's prompt), so
  they hold L_enc x P x D. `inference=True` counts a reparameterised prefix
  as it is folded (`fold_prefix`): layers x 2 x P x N * K per attention type.
  """
  spec = _adapters(model)
  if inference and spec.prefix is not None and spec.prefix.reparameterize:
    model = _folded_model(model)
    spec = model.adapters
  counts = {m: 0 for m in spec.methods}
  for path, leaf in abstract_params(model).items():
    method = spec.method_of(path)
    if method is not None:
      counts[method] += int(np.prod(leaf.shape))
  return counts


def _stack_layers(model: Transformer, stack: str) -> int:
  config = model.config
  return config.num_encoder_layers if stack == "encoder" else config.num_decoder_layers


def merge_lora(model: Transformer, params: Mapping) -> tuple[Transformer, dict]:
  """LoRA folded into the kernels it adapts: W' = W + (alpha / r) A B.

  Returns:
    (the model without LoRA (None adapters if LoRA was its only method), its
    params: the same tree with each adapted kernel replaced and `lora_a` /
    `lora_b` gone). Its logits equal the LoRA model's up to float rounding.
  """
  spec = _adapters(model)
  if spec.lora is None:
    raise ValueError(f"merge_lora: the model has no LoRA (adapters {spec.methods}).")
  flat = tree.flatten(params)
  merged = {p: v for p, v in flat.items() if not p.endswith(("/lora_a", "/lora_b"))}
  stacked = model.config.scan_layers
  for path in sorted(p for p in flat if p.endswith("/lora_a")):
    module = path[:-len("/lora_a")]
    kernel, a, b = flat[module + "/kernel"], flat[path], flat[module + "/lora_b"]
    # Layer by layer [D_in, r] x [r, D_out]; stacked [D_in, L, r] x [r, L, D_out].
    equation = "ilr,rlo->ilo" if stacked else "ir,ro->io"
    update = jnp.einsum(equation, jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32),
                        precision=jax.lax.Precision.HIGHEST)
    merged[module + "/kernel"] = np.asarray(
        jnp.asarray(kernel, jnp.float32) + spec.lora.scale * update).astype(
            np.asarray(kernel).dtype)
  rest = spec.replace(lora=None) if len(spec.methods) > 1 else None
  return model.clone(adapters=rest), tree.unflatten(merged)


def _folded_model(model: Transformer) -> Transformer:
  spec = model.adapters
  return model.clone(adapters=spec.replace(prefix=dataclasses.replace(spec.prefix, reparameterize=False)))


def fold_prefix(model: Transformer, params: Mapping) -> tuple[Transformer, dict]:
  """A reparameterised prefix -> its direct per-layer keys and values (for inference).

  Runs each stack's `PrefixMLP` once and writes layer i's keys and values as
  `{stack}/layers_{i}/{attention}/prefix_{key,value}` [P, N * K] (stacked:
  `{stack}/layers/{attention}/prefix_key` [P, L, N * K]); `{stack}/prefix/...`
  is dropped.

  Returns:
    (the model with `PrefixSpec(reparameterize=False)`, its params); its
    logits equal the reparameterised model's up to float rounding.
  """
  spec = _adapters(model)
  if spec.prefix is None or not spec.prefix.reparameterize:
    raise ValueError(f"fold_prefix: the model has no reparameterised prefix (adapters "
                     f"{spec.methods}, prefix={spec.prefix}).")
  flat = tree.flatten(params)
  folded = {p: v for p, v in flat.items() if not p.startswith(("encoder/prefix/",
                                                               "decoder/prefix/"))}
  config = model.config
  width = config.num_heads * config.head_dim
  for stack, blocks in adapters_lib.ATTENTION_BLOCKS.items():
    layers = _stack_layers(model, stack)
    sub = tree.unflatten({p[len(f"{stack}/prefix/"):]: v for p, v in flat.items()
                          if p.startswith(f"{stack}/prefix/")})
    values = adapter_layers.Prefixes(spec.prefix, blocks, layers, width).apply(
        {"params": sub}, config.emb_dim)
    for block, (keys, vals) in values.items():
      for name, array in (("prefix_key", keys), ("prefix_value", vals)):
        array = np.asarray(array)  # [L, P, N * K]
        if config.scan_layers:
          folded[f"{stack}/layers/{block}/{name}"] = np.moveaxis(array, 0, scan.SCAN_AXIS)
        else:
          for i in range(layers):
            folded[f"{stack}/layers_{i}/{block}/{name}"] = array[i]
  return _folded_model(model), tree.unflatten(folded)

