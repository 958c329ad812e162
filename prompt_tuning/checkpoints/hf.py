"""Hugging Face T5 directories in and out (`config.json` + safetensors / PyTorch bin).

One name table (`_name_table`) serves both directions. Hugging Face stores
`torch.nn.Linear` weights as [out, in]; T5X kernels are [in, out], so every
kernel is transposed, and so is the relative bias ([R, N] there, [N, R] here).
Hugging Face keeps the relative bias in block 0 of each stack only, which is
where T5X's one-table-per-stack goes. T5 1.1 has an untied `lm_head`
(`decoder/logits_dense`); T5 1.0 ties it to `shared` and rescales the decoder
output by 1/sqrt(d_model), our `logits_via_embedding=True`.
"""
import json
import os
from typing import Optional

import numpy as np

from prompt_tuning import tree
from prompt_tuning.checkpoints import validation
from prompt_tuning.models import T5Config, scan
from prompt_tuning.prompts.spec import PROMPT_PATHS

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX)
# Hugging Face model types with T5's layout: T5 / T5 1.1 / Flan-T5 ("t5") and mT5
# (T5 1.1's architecture with a 250,112-entry vocabulary).
MODEL_TYPES = ("t5", "mt5")

# Hugging Face `feed_forward_proj` <-> our `mlp_activations`. HF's "gated-gelu"
# means the tanh approximation ("gelu_new"), like our "gelu"; a plain "gelu" in
# HF is the exact erf GELU, which we do not implement, so it is not listed.
_FEED_FORWARD = {
    "gated-gelu": ("gelu", "linear"),
    "gated-gelu_new": ("gelu", "linear"),
    "gated-gelu_pytorch_tanh": ("gelu", "linear"),
    "gated-relu": ("relu", "linear"),
    "gated-silu": ("silu", "linear"),
    "relu": ("relu",),
    "gelu_new": ("gelu",),
    "gelu_pytorch_tanh": ("gelu",),
    "silu": ("silu",),
}
_FEED_FORWARD_OUT = {
    ("gelu", "linear"): "gated-gelu",
    ("relu", "linear"): "gated-relu",
    ("silu", "linear"): "gated-silu",
    ("relu",): "relu",
    ("gelu",): "gelu_new",
    ("silu",): "silu",
}
# Present in some HF files and ignored by `transformers` itself.
_IGNORED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
# HF copies of `shared.weight`; accepted when equal to it.
_EMBED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
_LAYER_NORM_EPSILON = 1e-6


# transformers' defaults for keys a config.json leaves out, per model_type.
_DEFAULTS = {
    "t5": dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8,
               feed_forward_proj="relu"),
    "mt5": dict(vocab_size=250112, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_heads=6,
                feed_forward_proj="gated-gelu"),
}


def config_from_hf(hf: dict, path: str = CONFIG_FILE) -> T5Config:
  """Maps a Hugging Face T5 or mT5 `config.json` dict to our `T5Config`.

  Missing keys take `transformers.T5Config`'s (or `MT5Config`'s) defaults, as
  `from_pretrained` would.
  """
  model_type = hf.get("model_type", "t5")
  if model_type not in MODEL_TYPES:
    raise ValueError(f"{path}: model_type={model_type!r}; expected one of {MODEL_TYPES}.")
  get = lambda key: hf.get(key, _DEFAULTS[model_type][key])
  proj = get("feed_forward_proj")
  if proj not in _FEED_FORWARD:
    raise ValueError(f"{path}: feed_forward_proj={proj!r} is not supported; expected "
                     f"one of {sorted(_FEED_FORWARD)}.")
  eps = hf.get("layer_norm_epsilon", _LAYER_NORM_EPSILON)
  if abs(eps - _LAYER_NORM_EPSILON) > 1e-12:
    raise ValueError(f"{path}: layer_norm_epsilon={eps}; expected {_LAYER_NORM_EPSILON} "
                     "(fixed in our RMS norm, as in T5).")
  num_layers = get("num_layers")
  return T5Config(
      vocab_size=get("vocab_size"), emb_dim=get("d_model"), num_heads=get("num_heads"),
      head_dim=get("d_kv"), mlp_dim=get("d_ff"), num_encoder_layers=num_layers,
      num_decoder_layers=hf.get("num_decoder_layers") or num_layers,
      mlp_activations=_FEED_FORWARD[proj],
      dropout_rate=hf.get("dropout_rate", 0.1),
      logits_via_embedding=_scales_decoder_output(hf),
      relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
      relative_attention_max_distance=hf.get("relative_attention_max_distance", 128))


def _scales_decoder_output(hf: dict) -> bool:
  # transformers' T5 rescales the decoder output by 1/sqrt(d_model) (T5 1.0) unless the
  # file says tie_word_embeddings=false; transformers 5 also writes the decision
  # itself as scale_decoder_outputs. Its mT5 never rescales (T5 1.1's architecture:
  # an untied lm_head; transformers 5 forces tie_word_embeddings=true in MT5Config
  # and unties when the file holds a separate lm_head.weight).
  if hf.get("model_type") == "mt5":
    return False
  if "scale_decoder_outputs" in hf:
    return bool(hf["scale_decoder_outputs"])
  return hf.get("tie_word_embeddings", True) is not False


def config_to_hf(config: T5Config) -> dict:
  """Our `T5Config` as a `config.json` that `T5ForConditionalGeneration` loads."""
  activations = tuple(config.mlp_activations)
  if activations not in _FEED_FORWARD_OUT:
    raise ValueError(f"mlp_activations={activations} has no Hugging Face T5 "
                     f"feed_forward_proj; expected one of {sorted(_FEED_FORWARD_OUT)}.")
  return {
      "architectures": ["T5ForConditionalGeneration"],
      "model_type": "t5",
      "vocab_size": config.vocab_size,
      "d_model": config.emb_dim,
      "d_kv": config.head_dim,
      "d_ff": config.mlp_dim,
      "num_layers": config.num_encoder_layers,
      "num_decoder_layers": config.num_decoder_layers,
      "num_heads": config.num_heads,
      "relative_attention_num_buckets": config.relative_attention_num_buckets,
      "relative_attention_max_distance": config.relative_attention_max_distance,
      "dropout_rate": config.dropout_rate,
      "layer_norm_epsilon": _LAYER_NORM_EPSILON,
      "initializer_factor": 1.0,
      "feed_forward_proj": _FEED_FORWARD_OUT[activations],
      "tie_word_embeddings": bool(config.logits_via_embedding),
      "is_encoder_decoder": True,
      "use_cache": True,
      "pad_token_id": 0,
      "eos_token_id": 1,
      "decoder_start_token_id": 0,
  }


def _name_table(config: T5Config) -> list[tuple[str, str, bool]]:
  """[(our path, HF name, transposed?)] for every param of `config` (no prompt)."""
  table = [("token_embedder/embedding", "shared.weight", False)]
  if len(config.mlp_activations) == 1:
    mlp = [("wi", "wi")]
  else:
    mlp = [(f"wi_{i}", f"wi_{i}") for i in range(len(config.mlp_activations))]
  mlp.append(("wo", "wo"))

  def attention(ours, theirs):
    return [(f"{ours}/{a}/kernel", f"{theirs}.{b}.weight", True)
            for a, b in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "o"))]

  def feed_forward(ours, theirs):
    return [(f"{ours}/{a}/kernel", f"{theirs}.DenseReluDense.{b}.weight", True)
            for a, b in mlp]

  def norm(ours, theirs):
    return [(f"{ours}/scale", f"{theirs}.weight", False)]

  for stack, layers, names in (
      ("encoder", config.num_encoder_layers,
       (("pre_attention_layer_norm", "attention", "SelfAttention", 0),
        ("pre_mlp_layer_norm", "mlp", None, 1))),
      ("decoder", config.num_decoder_layers,
       (("pre_self_attention_layer_norm", "self_attention", "SelfAttention", 0),
        ("pre_cross_attention_layer_norm", "encoder_decoder_attention",
         "EncDecAttention", 1),
        ("pre_mlp_layer_norm", "mlp", None, 2)))):
    table.append((f"{stack}/relpos_bias/rel_embedding",
                  f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                  True))
    for i in range(layers):
      for norm_name, block, hf_block, j in names:
        ours, theirs = f"{stack}/layers_{i}", f"{stack}.block.{i}.layer.{j}"
        table += norm(f"{ours}/{norm_name}", f"{theirs}.layer_norm")
        if hf_block is None:
          table += feed_forward(f"{ours}/{block}", theirs)
        else:
          table += attention(f"{ours}/{block}", f"{theirs}.{hf_block}")
    final = "encoder_norm" if stack == "encoder" else "decoder_norm"
    table += norm(f"{stack}/{final}", f"{stack}.final_layer_norm")
  if not config.logits_via_embedding:
    table.append(("decoder/logits_dense/kernel", "lm_head.weight", True))
  return table


def module_names(config: T5Config) -> dict[str, str]:
  """{our projection module: HF module} for every kernel of the layers, from the name table.

  "encoder/layers_0/attention/query" -> "encoder.block.0.layer.0.SelfAttention.q",
  "decoder/layers_1/mlp/wo" -> "decoder.block.1.layer.2.DenseReluDense.wo" (what
  PEFT adapters name the modules they adapt, under "base_model.model.").
  """
  return {ours[:-len("/kernel")]: theirs[:-len(".weight")]
          for ours, theirs, _ in _name_table(config)
          if "/layers_" in ours and ours.endswith("/kernel")}


def params_from_hf(config: T5Config, state: dict, path: str = "state dict") -> tuple[dict, dict]:
  """Hugging Face state dict -> our nested params.

  Args:
    config: the architecture (decides which names are expected).
    state: {HF name: [out, in] array}.
    path: where `state` came from, for messages.

  Returns:
    (params, {our path: HF name}); shapes are not checked here (see
    `validation.validate_params`), names are: every expected HF name must be
    present and every present one used.
  """
  state = dict(state)
  for name in _IGNORED:
    state.pop(name, None)
  shared = state.get("shared.weight")
  copies = list(_EMBED_COPIES)
  if config.logits_via_embedding:
    copies.append("lm_head.weight")  # old PyTorch files store the tied copy
  for name in copies:
    if name in state and shared is not None:
      if np.shape(state[name]) == np.shape(shared) and np.array_equal(state[name], shared):
        del state[name]
      elif name == "lm_head.weight":
        raise ValueError(
            f"{path}: the config ties the output layer to the embedding "
            "(tie_word_embeddings is not false) but lm_head.weight differs from "
            "shared.weight. Expected tie_word_embeddings=false for an untied "
            "(T5 1.1) lm_head, or lm_head.weight equal to shared.weight.")
  flat, names, missing = {}, {}, []
  for ours, theirs, transposed in _name_table(config):
    if theirs not in state:
      missing.append(theirs)
      continue
    value = np.asarray(state.pop(theirs))
    flat[ours] = value.T if transposed else value
    names[ours] = theirs
  if missing or state:
    lines = [f"{path}: Hugging Face T5 weights do not match the config "
             f"(num_layers={config.num_encoder_layers}, num_decoder_layers="
             f"{config.num_decoder_layers}, feed_forward gated="
             f"{len(config.mlp_activations) > 1}, tie_word_embeddings="
             f"{config.logits_via_embedding}):"]
    if missing:
      lines.append(f"  missing ({len(missing)}): " + ", ".join(missing))
    if state:
      lines.append(f"  unexpected ({len(state)}): " + ", ".join(
          f"{k} {tuple(np.shape(v))}" for k, v in sorted(state.items())))
    raise ValueError("\n".join(lines))
  return tree.unflatten(flat), names


def params_to_hf(config: T5Config, params: dict) -> dict:
  """Our params -> {HF name: [out, in] numpy array}, what `save_pretrained` writes."""
  flat = tree.flatten(params)
  return {theirs: np.ascontiguousarray(np.asarray(flat[ours]).T if transposed
                                       else np.asarray(flat[ours]))
          for ours, theirs, transposed in _name_table(config)}


def _read_torch(file: str) -> dict:
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"{file}: reading PyTorch .bin weights needs `torch`; install it "
                      "or convert the directory to model.safetensors.") from e
  state = torch.load(file, map_location="cpu", weights_only=True)
  # numpy has no bfloat16 view of a torch tensor; go through float32.
  return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy()
          for k, v in state.items()}


def _read_safetensors(file: str) -> dict:
  from safetensors import SafetensorError  # pylint: disable=import-outside-toplevel
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
  try:
    return load_file(file)
  except SafetensorError as e:
    raise ValueError(f"{file}: cannot read it as safetensors ({e}); the file is truncated "
                     "or not a safetensors file. Expected Hugging Face T5 weights.") from e


def read_state(directory: str) -> dict:
  """{HF name: numpy array} from a directory's (possibly sharded) weight files."""
  for name, index, reader in ((SAFETENSORS_FILE, SAFETENSORS_INDEX, _read_safetensors),
                              (TORCH_FILE, TORCH_INDEX, _read_torch)):
    if os.path.isfile(os.path.join(directory, name)):
      return reader(os.path.join(directory, name))
    if os.path.isfile(os.path.join(directory, index)):
      with open(os.path.join(directory, index), encoding="utf-8") as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
      state = {}
      for shard in shards:
        state.update(reader(os.path.join(directory, shard)))
      return state
  raise ValueError(f"{directory}: no Hugging Face weights; expected one of {WEIGHT_FILES}.")


def is_hf_dir(directory: str) -> bool:
  return (os.path.isfile(os.path.join(directory, CONFIG_FILE))
          and any(os.path.isfile(os.path.join(directory, f)) for f in WEIGHT_FILES))


def load_hf(directory: str, config: Optional[T5Config] = None,
            dtype: str = "float32") -> tuple[T5Config, dict]:
  """Loads a Hugging Face T5 directory.

  Args:
    directory: holds `config.json` and `model.safetensors` (or sharded
      safetensors, or `pytorch_model.bin`).
    config: if given, the weights must fit it; otherwise it comes from
      `config.json`, checked against the weight shapes.
    dtype: "float32" or "bfloat16" for the returned arrays.

  Returns:
    (config, params): params a nested dict of numpy arrays with T5X names.
  """
  validation.check_dtype(dtype)
  config_path = os.path.join(directory, CONFIG_FILE)
  with open(config_path, encoding="utf-8") as f:
    try:
      hf_config = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{config_path}: not valid JSON ({e}); expected a Hugging Face T5 "
                       "config.json.") from e
  if not isinstance(hf_config, dict):
    raise ValueError(f"{config_path}: holds a JSON {type(hf_config).__name__}; expected an "
                     "object of Hugging Face T5 config fields.")
  base = config_from_hf(hf_config, os.path.join(directory, CONFIG_FILE))
  state = read_state(directory)
  if not base.logits_via_embedding and "lm_head.weight" not in state and "shared.weight" in state:
    # Unscaled output through the shared embedding: an untied kernel that happens
    # to equal the embedding.
    state["lm_head.weight"] = state["shared.weight"]
  params, names = params_from_hf(config or base, state, directory)
  config = validation.resolve_config(params, directory, config or base, source_names=names)
  return config, validation.cast(params, dtype)


def save_hf(config: T5Config, params: dict, directory: str, overwrite: bool = False,
            drop_prompt: bool = False) -> None:
  """Writes a Hugging Face T5 directory: `model.safetensors` + `config.json`.

  `transformers.T5ForConditionalGeneration.from_pretrained(directory)` loads it.
  Arrays are written in their own dtype (float32 or bfloat16).

  Args:
    config: the model config of `params`.
    params: nested params with T5X names (a `scan_layers` model's stacked
      layers are written layer by layer).
    directory: created if needed.
    overwrite: replace existing `config.json` / `model.safetensors`.
    drop_prompt: leave out the soft prompts (encoder and decoder; HF T5 has no
      place for them); without it a prompt in `params` is an error.
  """
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  flat = tree.flatten(params)
  prompts = [p for p in PROMPT_PATHS if p in flat]
  if prompts:
    if not drop_prompt:
      raise ValueError(f"params hold a soft prompt at {', '.join(prompts)}, which a "
                       "Hugging Face T5 directory cannot store; pass drop_prompt=True to "
                       "write the frozen model without it.")
    for prompt_path in prompts:
      flat.pop(prompt_path)
    params = tree.unflatten(flat)
  params = scan.unstack_layers(params, config) if scan.is_stacked(params) else params
  validation.validate_params(config, params, "params to save")
  existing = [f for f in (CONFIG_FILE, SAFETENSORS_FILE)
              if os.path.exists(os.path.join(directory, f))]
  if existing and not overwrite:
    raise FileExistsError(f"{directory}: {existing} already exist; pass overwrite=True "
                          "to replace them.")
  state = params_to_hf(config, params)
  dtypes = {str(v.dtype) for v in state.values()}
  if not dtypes <= set(validation.DTYPES):
    raise ValueError(f"params have dtypes {sorted(dtypes)}; expected float32 or bfloat16.")
  os.makedirs(directory, exist_ok=True)
  hf_config = config_to_hf(config)
  hf_config["dtype"] = "bfloat16" if dtypes == {"bfloat16"} else "float32"
  save_file(state, os.path.join(directory, SAFETENSORS_FILE), metadata={"format": "pt"})
  with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
    json.dump(hf_config, f, indent=2, sort_keys=True)
