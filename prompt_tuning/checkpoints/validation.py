"""Parameter trees vs configs: derive a `T5Config` from shapes, check one against the other.

Every loader ends here, so a checkpoint either matches the model exactly or
fails with one message listing every missing name, every unexpected name and
every wrong shape. Paths are "/"-joined T5X names, e.g.
`encoder/layers_0/attention/query/kernel`. A soft prompt stored with the
weights (`encoder/prompt/prompt`, `decoder/prompt/prompt`; a [P, D] prompt or
a [K, P, D] bank) is not part of the architecture: it is checked for its
width and passed through, and `prompt_tuning.prompts.export.prompt_specs`
reads its spec off its shape.
"""
import dataclasses
import functools
import re
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning import tree
from prompt_tuning.models import T5Config, Transformer
from prompt_tuning.prompts.spec import PROMPT_PATHS

Params = dict  # plain nested dict of arrays
# The dtypes parameters are read and held in (FROZEN_PARAMS_DTYPE too).
DTYPES = ("float32", "bfloat16")

# T5 1.1 (and T5X's default) when the shapes say "gated"; T5 1.0 when they do not.
GATED_ACTIVATIONS = ("gelu", "linear")
UNGATED_ACTIVATIONS = ("relu",)


def check_dtype(dtype: str) -> np.dtype:
  """Returns the numpy dtype for "float32" / "bfloat16"; anything else raises."""
  if dtype not in DTYPES:
    raise ValueError(f"dtype={dtype!r}; expected one of {DTYPES}.")
  return jnp.dtype(dtype)


def cast(params: Params, dtype: str) -> Params:
  """Casts every leaf to a host numpy array of `dtype` ("float32" or "bfloat16")."""
  np_dtype = check_dtype(dtype)
  return jax.tree_util.tree_map(lambda x: np.asarray(x).astype(np_dtype, copy=False), params)


def expected_shapes(config: T5Config) -> dict:
  """{path: shape} of every param the model builds for `config` (nothing allocated)."""
  return dict(_expected_shapes(config))


@functools.lru_cache(maxsize=64)
def _expected_shapes(config: T5Config) -> tuple:
  # Traced, not run: the model itself is the reference for names and shapes.
  # Checkpoints hold layers one by one, whatever layout the model runs with.
  model = Transformer(config.architecture())
  tokens = jax.ShapeDtypeStruct((1, 4), jnp.int32)
  abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens, tokens, tokens)
  return tuple((path, tuple(leaf.shape))
               for path, leaf in tree.flatten(_unbox(abstract["params"])).items())


def _unbox(tree):
  # flax wraps params with logical axes in `nn.Partitioned`; keep the raw leaf.
  return jax.tree_util.tree_map(lambda x: getattr(x, "value", x), tree,
                                is_leaf=lambda x: hasattr(x, "value"))


def shape_of(leaf) -> tuple:
  """Shape of an array, of an abstract leaf (`jax.ShapeDtypeStruct`, orbax metadata) or of a
  plain Python value: `np.shape` reads a leaf's own `.shape` and converts only what has none."""
  return tuple(np.shape(leaf))


def _shape(flat: Mapping[str, Any], path: str, where: str) -> tuple:
  if path not in flat:
    raise ValueError(f"{where}: cannot derive the model config: parameter {path} is "
                     f"missing (found {len(flat)} parameters, e.g. {sorted(flat)[:3]}).")
  return shape_of(flat[path])


def _num_layers(flat: Mapping[str, Any], stack: str) -> int:
  pattern = re.compile(rf"^{stack}/layers_(\d+)/")
  indices = {int(m.group(1)) for m in map(pattern.match, flat) if m}
  return max(indices) + 1 if indices else 0


def derive_config(params: Params, path: str = "params",
                  base: Optional[T5Config] = None) -> T5Config:
  """Reads the architecture off the parameter shapes.

  Derived: vocab_size and emb_dim (token embedding [V, D]), num_heads and
  relative_attention_num_buckets (encoder rel_embedding [N, R]), head_dim
  (query kernel [D, N * K]), mlp_dim (wi kernel [D, F]), the layer counts,
  tied vs untied logits (is there a `decoder/logits_dense`?) and gated vs
  single-activation MLP (`wi_0`/`wi_1` vs `wi`). A gated MLP is taken to be
  T5 1.1's gated GELU and a single one T5 1.0's ReLU unless `base` says
  otherwise; fields shapes cannot tell (max distance, dropout, dtype, prompt)
  come from `base` or the `T5Config` defaults.

  Args:
    params: nested param dict with T5X names.
    path: where the params came from, for error messages.
    base: config supplying the fields shapes cannot tell.

  Returns:
    The config. Call `validate_params` to check every other parameter.
  """
  flat = tree.flatten(params)
  vocab_size, emb_dim = _shape(flat, "token_embedder/embedding", path)
  num_heads, num_buckets = _shape(flat, "encoder/relpos_bias/rel_embedding", path)
  joined = _shape(flat, "encoder/layers_0/attention/query/kernel", path)[1]
  if joined % num_heads:
    raise ValueError(f"{path}: encoder/layers_0/attention/query/kernel has {joined} "
                     f"columns; expected a multiple of num_heads={num_heads} (from "
                     f"encoder/relpos_bias/rel_embedding).")
  mlp = "encoder/layers_0/mlp"
  wi = sorted(p for p in flat if re.fullmatch(rf"{mlp}/wi(_\d+)?/kernel", p))
  if not wi:
    raise ValueError(f"{path}: cannot derive the model config: no {mlp}/wi/kernel or "
                     f"{mlp}/wi_0/kernel.")
  mlp_dim = _shape(flat, wi[0], path)[1]
  base = base or T5Config()
  if wi == [f"{mlp}/wi/kernel"]:
    activations = (base.mlp_activations if len(base.mlp_activations) == 1
                   else UNGATED_ACTIVATIONS)
  elif len(wi) == len(base.mlp_activations):
    activations = base.mlp_activations
  elif len(wi) == 2:
    activations = GATED_ACTIVATIONS
  else:
    raise ValueError(f"{path}: {len(wi)} MLP input kernels ({wi}); cannot guess their "
                     "activations. Pass a config with matching mlp_activations.")
  return dataclasses.replace(
      base, vocab_size=vocab_size, emb_dim=emb_dim, num_heads=num_heads,
      head_dim=joined // num_heads, mlp_dim=mlp_dim, mlp_activations=activations,
      num_encoder_layers=_num_layers(flat, "encoder"),
      num_decoder_layers=_num_layers(flat, "decoder"),
      relative_attention_num_buckets=num_buckets,
      logits_via_embedding="decoder/logits_dense/kernel" not in flat)


def _fmt(shape) -> str:
  return str(tuple(int(d) for d in shape))


def _check_prompts(flat: Mapping[str, tuple], config: T5Config, path: str) -> None:
  """A stored prompt must be a [P, D] prompt or [K, P, D] bank of the model's width."""
  for prompt_path in PROMPT_PATHS:
    shape = flat.get(prompt_path)
    if shape is not None and (len(shape) not in (2, 3) or shape[-1] != config.emb_dim):
      raise ValueError(f"{path}: {prompt_path} has shape {_fmt(shape)}; expected a "
                       f"[P, d_model={config.emb_dim}] prompt or a [K, P, d_model] bank.")


def validate_params(config: T5Config, params: Params, path: str = "params",
                    source_names: Optional[Mapping[str, str]] = None) -> None:
  """Checks that `params` are exactly the params the model builds for `config`.

  Soft prompts (`PROMPT_PATHS`) may be present or not: a pretrained
  checkpoint holds none, a prompt-tuning checkpoint may hold them; present,
  they must have the model's width. Anything else missing, unexpected or of
  the wrong shape is reported, all at once.

  Args:
    config: the model config the params must fit.
    params: nested param dict with T5X names.
    path: the checkpoint the params came from; starts every message.
    source_names: optional {our path: name in the file} (e.g. Hugging Face
      names) shown next to our names.

  Raises:
    ValueError: a vocab-size mismatch (its own message), a prompt of the wrong
      width, or the list of missing / unexpected / wrong-shape parameters.
  """
  flat = {k: shape_of(v) for k, v in tree.flatten(params).items()}
  _check_prompts(flat, config, path)
  flat = {k: v for k, v in flat.items() if k not in PROMPT_PATHS}
  expected = expected_shapes(config)
  name = lambda p: f"{p} ({source_names[p]})" if source_names and p in source_names else p

  for vocab_path, axis in (("token_embedder/embedding", 0),
                           ("decoder/logits_dense/kernel", 1)):
    if vocab_path in flat and vocab_path in expected and len(flat[vocab_path]) == 2:
      found = flat[vocab_path][axis]
      if found != config.vocab_size:
        raise ValueError(
            f"{path}: vocab size mismatch: {name(vocab_path)} has shape "
            f"{_fmt(flat[vocab_path])}, i.e. vocab_size={found}; the config expects "
            f"vocab_size={config.vocab_size}, shape {_fmt(expected[vocab_path])}. "
            "Use the vocabulary the checkpoint was trained with (T5 1.1: 32128).")

  missing = sorted(set(expected) - set(flat))
  unexpected = sorted(set(flat) - set(expected))
  wrong = sorted(p for p in set(flat) & set(expected) if flat[p] != expected[p])
  if not (missing or unexpected or wrong):
    return
  lines = [f"{path}: parameters do not match the model config "
           f"(emb_dim={config.emb_dim}, num_heads={config.num_heads}, "
           f"head_dim={config.head_dim}, mlp_dim={config.mlp_dim}, "
           f"layers={config.num_encoder_layers}+{config.num_decoder_layers}, "
           f"mlp_activations={config.mlp_activations}, "
           f"logits_via_embedding={config.logits_via_embedding}):"]
  if missing:
    lines.append(f"  missing ({len(missing)}):")
    lines += [f"    {name(p)}: expected {_fmt(expected[p])}" for p in missing]
  if unexpected:
    lines.append(f"  unexpected ({len(unexpected)}):")
    lines += [f"    {name(p)}: found {_fmt(flat[p])}" for p in unexpected]
  if wrong:
    lines.append(f"  wrong shape ({len(wrong)}):")
    lines += [f"    {name(p)}: expected {_fmt(expected[p])}, found {_fmt(flat[p])}"
              for p in wrong]
  raise ValueError("\n".join(lines))


def resolve_config(params: Params, path: str, config: Optional[T5Config],
                   source_names: Optional[Mapping[str, str]] = None) -> T5Config:
  """Takes `config` or derives one, then validates `params` against it.

  Leaves may be abstract (anything with `.shape`), so a loader can check a
  checkpoint before reading its arrays.

  Args:
    params: nested params (T5X names, a prompt already at its path).
    path: the checkpoint, for messages.
    config: if given, the params must fit it; otherwise it is derived.
    source_names: {our path: file's name}, for messages.

  Returns:
    The config the params fit.
  """
  if config is None:
    config = derive_config(params, path)
  validate_params(config, params, path, source_names)
  return config
