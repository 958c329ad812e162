"""Hugging Face PEFT LoRA and IA3 adapters in and out (`peft_type` LORA / IA3, seq2seq T5).

An adapter directory holds `adapter_config.json` and `adapter_model.safetensors`
with PEFT's key names for T5 (the module names are `hf.module_names`'s):

  base_model.model.{module}.lora_A.weight   [r, d_in]  = our lora_a [d_in, r], transposed
  base_model.model.{module}.lora_B.weight   [d_out, r] = our lora_b [r, d_out], transposed
  base_model.model.{...}.{k,v}.ia3_l        [N * K, 1]  = our ia3_key / ia3_value
  base_model.model.{...}.DenseReluDense.wo.ia3_l  [1, F]  = our mlp/ia3_hidden

PEFT scales LoRA by lora_alpha / r, as we do, and puts its IA3 vector for a
"feedforward" module (wo) on the module's input, for the others (k, v) on the
output, which is what our vectors scale. PEFT's target names for T5 (q, k, v,
o, wi, wi_0, wi_1, wo) match every layer of both stacks, as our targets do.
`peft.PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(base), directory)`
loads what `save_adapter` writes, `base` being the frozen model as a Hugging Face
directory (`checkpoints.save_hf`); tested against the installed peft both ways.
"""
import json
import os
import shutil
from typing import Mapping, Optional

import numpy as np

from prompt_tuning import tree
from prompt_tuning.checkpoints import hf
from prompt_tuning.models import T5Config, Transformer, adapter_params, scan
from prompt_tuning.models.adapters import IA3, LORA, LORA_TARGETS, AdapterSpec, LoraSpec
from prompt_tuning.prompts.peft import CONFIG_FILE, TASK_TYPE, WEIGHTS_FILE, read_config

KEY_PREFIX = "base_model.model."
# Our projection names -> PEFT's target_modules names for T5.
HF_PROJECTIONS = {"query": "q", "key": "k", "value": "v", "out": "o", "wi": "wi",
                  "wi_0": "wi_0", "wi_1": "wi_1", "wo": "wo"}
# IA3 as the paper (and PEFT's T5 default) places it: keys, values, the input of wo.
IA3_TARGETS = ("k", "v", "wo")
IA3_FEEDFORWARD = ("wo",)
_IA3_VECTORS = {"key": "ia3_key", "value": "ia3_value", "wo": "ia3_hidden"}
# LoraConfig options we do not implement, with the value that means "off".
_LORA_OFF = {"use_rslora": False, "use_dora": False, "bias": "none", "fan_in_fan_out": False,
             "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {},
             "lora_bias": False, "exclude_modules": None, "target_parameters": None,
             "modules_to_save": None, "layer_replication": None}


def _method(model: Transformer) -> str:
  spec = model.adapters
  methods = spec.methods if spec is not None else ()
  if methods not in ((LORA,), (IA3,)) or model.prompt_specs:
    raise ValueError(f"a PEFT LoRA / IA3 adapter holds one method; the model has adapters "
                     f"{methods} and {len(model.prompt_specs)} soft prompt(s). Expected "
                     "AdapterSpec(lora=...) or AdapterSpec(ia3=True) alone.")
  return methods[0]


def _entries(config: T5Config, spec: AdapterSpec):
  """[(our param path, PEFT key, transform to PEFT)] of the spec's LoRA or IA3 params."""
  out = []
  for ours, theirs in sorted(hf.module_names(config).items()):
    block, projection = ours.rsplit("/", 1)
    name = KEY_PREFIX + theirs
    if spec.lora_for(projection) is not None:
      out.append((ours + "/lora_a", name + ".lora_A.weight"))
      out.append((ours + "/lora_b", name + ".lora_B.weight"))
    if spec.ia3 and projection in _IA3_VECTORS:
      out.append((f"{block}/{_IA3_VECTORS[projection]}", name + ".ia3_l"))
  return out


def _to_peft(path: str, value: np.ndarray) -> np.ndarray:
  if path.endswith(("/lora_a", "/lora_b")):
    return value.T  # ours [in, r] / [r, out]; torch.nn.Linear's [out, in]
  return value[None, :] if path.endswith("/ia3_hidden") else value[:, None]


def _from_peft(path: str, value: np.ndarray) -> np.ndarray:
  return value.T if path.endswith(("/lora_a", "/lora_b")) else value.reshape(-1)


def _config(method: str, spec: AdapterSpec, base: Optional[str]) -> dict:
  common = {"auto_mapping": None, "base_model_name_or_path": base, "inference_mode": True,
            "peft_type": method.upper(), "revision": None, "task_type": TASK_TYPE}
  if method == IA3:
    return {**common, "target_modules": list(IA3_TARGETS),
            "feedforward_modules": list(IA3_FEEDFORWARD), "init_ia3_weights": True,
            "fan_in_fan_out": False, "modules_to_save": None}
  alpha = spec.lora.alpha
  return {**common, **_LORA_OFF, "r": spec.lora.rank,
          "lora_alpha": int(alpha) if float(alpha).is_integer() else float(alpha),
          "target_modules": sorted(HF_PROJECTIONS[t] for t in spec.lora.targets),
          "lora_dropout": 0.0, "init_lora_weights": True, "layers_pattern": None}


def save_adapter(directory: str, model: Transformer, params: Mapping, *,
                 base_model_name_or_path: Optional[str] = None,
                 overwrite: bool = False) -> str:
  """Writes the model's LoRA or IA3 params as a PEFT adapter directory.

  Args:
    directory: created; written to a temporary name first and renamed.
    model: a `Transformer` whose only method is LoRA or IA3 (no soft prompt).
    params: its params (the whole tree or only the method's), layer by layer or
      stacked (`scan_layers`).
    base_model_name_or_path: the frozen model (HF hub id or directory).
    overwrite: replace an existing adapter.

  Returns:
    `directory`.
  """
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
  method = _method(model)
  if os.path.exists(directory) and not overwrite:
    raise FileExistsError(f"{directory} exists; pass overwrite=True (--overwrite) to replace "
                          "it.")
  config = model.config.architecture()
  flat = tree.flatten(params)
  if scan.is_stacked(params):
    flat = tree.flatten(scan.unstack_layers(
        tree.unflatten({p: v for p, v in flat.items() if model.adapters.method_of(p)}),
        config))
  state, missing = {}, []
  for ours, key in _entries(config, model.adapters):
    if ours not in flat:
      missing.append(ours)
      continue
    state[key] = np.ascontiguousarray(_to_peft(ours, np.asarray(flat[ours], np.float32)))
  if missing:
    raise ValueError(f"params lack {len(missing)} {method} params for the PEFT adapter: "
                     + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""))
  tmp = directory.rstrip("/") + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  save_file(state, os.path.join(tmp, WEIGHTS_FILE), metadata={"format": "pt"})
  with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
    json.dump(_config(method, model.adapters, base_model_name_or_path), f, indent=2,
              sort_keys=True)
  if os.path.exists(directory):
    shutil.rmtree(directory)
  os.replace(tmp, directory)
  return directory


def _spec(config: dict, path: str) -> AdapterSpec:
  """The AdapterSpec a PEFT LoRA / IA3 config describes, or a ValueError naming why not."""
  peft_type = config.get("peft_type")
  if peft_type not in ("LORA", "IA3"):
    raise ValueError(f"{path}: peft_type={peft_type!r}; expected 'LORA' or 'IA3'.")
  if config.get("task_type") not in (TASK_TYPE, None):
    raise ValueError(f"{path}: task_type={config.get('task_type')!r}; expected {TASK_TYPE!r}.")
  targets = config.get("target_modules")
  if not isinstance(targets, list):
    raise ValueError(f"{path}: target_modules={targets!r}; expected a list of T5 module "
                     f"names from {sorted(HF_PROJECTIONS.values())} (a regex is not read).")
  if peft_type == "IA3":
    feedforward = config.get("feedforward_modules") or []
    if sorted(targets) != sorted(IA3_TARGETS) or sorted(feedforward) != list(IA3_FEEDFORWARD):
      raise ValueError(f"{path}: IA3 on target_modules={targets}, feedforward_modules="
                       f"{feedforward}; expected {list(IA3_TARGETS)} and "
                       f"{list(IA3_FEEDFORWARD)} (the paper's placement, PEFT's T5 default).")
    return AdapterSpec(ia3=True)
  for key, off in _LORA_OFF.items():
    value = config.get(key)
    if value not in (None, off) and not (isinstance(off, dict) and not value):
      raise ValueError(f"{path}: {key}={value!r} is not supported; expected {off!r}.")
  ours = {v: k for k, v in HF_PROJECTIONS.items()}
  unknown = [t for t in targets if t not in ours]
  if unknown:
    raise ValueError(f"{path}: target_modules has {unknown[0]!r}; expected T5 module names "
                     f"from {sorted(ours)}.")
  return AdapterSpec(lora=LoraSpec(rank=config.get("r"), alpha=config.get("lora_alpha"),
                                   targets=tuple(t for t in LORA_TARGETS  # PEFT's is a set
                                                 if t in {ours[name] for name in targets})))


def load_adapter(directory: str, config: T5Config) -> tuple[AdapterSpec, dict]:
  """Reads a PEFT LoRA or IA3 adapter for the T5 `config` describes.

  Returns:
    (its AdapterSpec, its params layer by layer: nested float32 numpy arrays
    with our names; `scan.to_layout` stacks them for a `scan_layers` model).

  Raises:
    ValueError: another PEFT method, options we do not implement (rsLoRA,
      DoRA, biases, per-layer ranks, ...), or weights whose names or shapes do
      not fit the config (each listed).
  """
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
  spec = _spec(read_config(directory), os.path.join(directory, CONFIG_FILE))
  Transformer(config, adapters=spec)  # checks the rank and the targets against the model
  weights = os.path.join(directory, WEIGHTS_FILE)
  if not os.path.isfile(weights):
    raise ValueError(f"{directory}: no {WEIGHTS_FILE}; expected PEFT's adapter weights.")
  state = dict(load_file(weights))
  flat, missing = {}, []
  for ours, key in _entries(config.architecture(), spec):
    if key not in state:
      missing.append(key)
      continue
    flat[ours] = _from_peft(ours, np.asarray(state.pop(key), np.float32))
  if missing or state:
    lines = [f"{weights}: the adapter's weights do not fit the model:"]
    if missing:
      lines.append(f"  missing ({len(missing)}): " + ", ".join(missing[:6]))
    if state:
      lines.append(f"  unexpected ({len(state)}): " + ", ".join(sorted(state)[:6]))
    raise ValueError("\n".join(lines))
  model = Transformer(config.architecture(), adapters=spec)
  expected = adapter_params.abstract_params(model)
  wrong = [f"{p}: {v.shape}, expected {expected[p].shape}" for p, v in flat.items()
           if v.shape != expected[p].shape]
  if wrong:
    raise ValueError(f"{weights}: wrong shapes: " + "; ".join(wrong[:4]))
  return spec, tree.unflatten(flat)

