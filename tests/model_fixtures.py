"""Random T5 weights for model tests, drawn with numpy (independent of flax's init), and
the decoding and scoring functions jitted as references (one compile, not op-by-op)."""
import jax
import numpy as np

from prompt_tuning.models import decoding, init_params, scoring

EOS = 1

# The model and the lengths / beam count are compile-time constants; alpha is traced.
greedy = jax.jit(decoding.greedy_decode, static_argnums=(0, 3))
beam = jax.jit(decoding.beam_search, static_argnums=(0, 3, 4))
score = jax.jit(scoring.score, static_argnums=0)
score_options = jax.jit(scoring.score_options, static_argnums=0)
rank_classify = jax.jit(scoring.rank_classify, static_argnums=0)


def random_params(model, seed: int = 0, eos_boost: float = 2.0,
                  logits_scale: float = 1.0) -> dict:
  """numpy-drawn params in the tree of `model` (a Transformer, its prompts
  included, or a T5Config): kernels N(0, 1/fan_in), embedding N(0, 1),
  relative biases N(0, 0.5), norm scales U[0.5, 1.5], prompts U[-0.5, 0.5];
  the output layer scaled by `logits_scale` (sharper next-token distributions)
  and its EOS column by `eos_boost`."""
  rng = np.random.default_rng(seed)
  abstract = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))

  def draw(path, leaf):
    name = "/".join(k.key for k in path)
    if name.endswith("/scale"):
      x = rng.uniform(0.5, 1.5, leaf.shape)
    elif name.endswith("/kernel"):
      x = rng.normal(0.0, leaf.shape[0] ** -0.5, leaf.shape)
    elif name.endswith("rel_embedding"):
      x = rng.normal(0.0, 0.5, leaf.shape)
    elif name.endswith("prompt/prompt"):
      x = rng.uniform(-0.5, 0.5, leaf.shape)
    else:
      x = rng.normal(0.0, 1.0, leaf.shape)
    if name == "decoder/logits_dense/kernel":
      x *= logits_scale
      x[:, EOS] *= eos_boost
    return x.astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def away_from_init(flat: dict, seed: int = 0) -> dict:
  """`flat` ({path: array}) with LoRA's A and B drawn N(0, 0.3) and IA3's vectors
  U[0.5, 1.5], so neither sits at its init (B = 0, ones); other paths kept."""
  rng = np.random.default_rng(seed + 100)
  out = dict(flat)
  for path, value in flat.items():
    if path.endswith(("/lora_a", "/lora_b")):
      out[path] = rng.normal(0.0, 0.3, np.shape(value)).astype(np.float32)
    elif "/ia3_" in path:
      out[path] = rng.uniform(0.5, 1.5, np.shape(value)).astype(np.float32)
  return out
