"""`prompt-tuning export`: a trained prompt, LoRA or IA3 as a PEFT adapter, or as `.npy` files.

    prompt-tuning export --model_dir=/runs/rte --format=peft --output_dir=/tmp/rte_peft \\
        [--checkpoint=best|latest|STEP] [--base_model_name_or_path=google/t5-base-lm-adapt]
    prompt-tuning export --prompt_file=prompt.npy --format=peft --output_dir=/tmp/p \\
        --base_model_name_or_path=/ckpt/t5-base-lm-adapt
    prompt-tuning export --model_dir=/runs/rte --format=npy --output_dir=/tmp/rte_npy

A PEFT adapter loads with `peft.PeftModel.from_pretrained(T5ForConditionalGeneration
.from_pretrained(BASE), OUTPUT_DIR)`, where BASE is the frozen model as a Hugging
Face directory (`prompt_tuning.checkpoints.save_hf` writes one from any checkpoint
this project reads). The base model defaults to the run's INITIAL_CHECKPOINT_PATH.
PEFT has no decoder prompt: a run with one exports to `.npy` only. A LoRA or IA3 run
(configs/methods/lora.gin, ia3.gin) exports as PEFT's LORA / IA3 adapter; prefix and
deep-prompt runs to `.npy` only. `.npy` export writes every trained parameter as
`<path>.npy`.
"""
import argparse
import os
import sys
from typing import Optional

from prompt_tuning import tree
from prompt_tuning.checkpoints import peft_adapters, run_dir
from prompt_tuning.models import T5Config, Transformer
from prompt_tuning.models.adapters import AdapterSpec
from prompt_tuning.prompts import export, peft
from prompt_tuning.prompts.spec import DECODER_PROMPT_PATH, PROMPT_PATH

FORMATS = ("peft", "npy")


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="prompt-tuning export", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument("--model_dir", help="a prompt-tuning run (MODEL_DIR)")
  source.add_argument("--prompt_file", help=".npy, a directory of prompt files, or a PEFT "
                      "adapter")
  p.add_argument("--checkpoint", default="best", help="best, latest or a step (with --model_dir)")
  p.add_argument("--format", choices=FORMATS, required=True)
  p.add_argument("--output_dir", required=True)
  p.add_argument("--base_model_name_or_path", default=None,
                 help="the frozen model the adapter goes with (default: the run's "
                      "INITIAL_CHECKPOINT_PATH)")
  p.add_argument("--num_transformer_submodules", type=int, default=1, choices=(1, 2),
                 help="PEFT's rows per virtual token group (1: exactly the prompt)")
  p.add_argument("--prompt_index", type=int, default=None,
                 help="which prompt of a saved [K, P, D] bank to export as PEFT")
  p.add_argument("--overwrite", action="store_true")
  return p


def export_prompt(*, output_dir: str, fmt: str, model_dir: Optional[str] = None,
                  prompt_file: Optional[str] = None, checkpoint="best",
                  base_model_name_or_path: Optional[str] = None,
                  num_transformer_submodules: int = 1, prompt_index: Optional[int] = None,
                  overwrite: bool = False) -> str:
  """Writes a saved prompt as a PEFT adapter ("peft") or `.npy` files ("npy").

  Returns:
    `output_dir`.
  """
  if fmt not in FORMATS:
    raise ValueError(f"format={fmt!r}; expected one of {FORMATS}.")
  source = model_dir or prompt_file
  flat, where = run_dir.read_prompt_source(source, checkpoint)
  if fmt == "npy":
    if os.path.exists(output_dir) and not overwrite:
      raise FileExistsError(f"{output_dir} exists; pass --overwrite to replace it.")
    return export.write_npy_dir(output_dir, tree.unflatten(flat))
  meta = run_dir.read_meta(model_dir) if model_dir else {}
  if meta.get("adapters"):
    return _export_method(output_dir, meta, flat, where, base_model_name_or_path, overwrite)
  if DECODER_PROMPT_PATH in flat:
    raise ValueError(f"{where} holds a decoder prompt ({DECODER_PROMPT_PATH}), which a PEFT "
                     "prompt-tuning adapter cannot hold; export it with --format=npy.")
  if PROMPT_PATH not in flat:
    raise ValueError(f"{where} holds no encoder prompt ({PROMPT_PATH}); found {sorted(flat)}.")
  prompt = flat[PROMPT_PATH]
  if prompt.ndim == 3:
    if prompt_index is None or not 0 <= prompt_index < len(prompt):
      raise ValueError(f"{where} holds a bank of {len(prompt)} prompts; expected "
                       f"--prompt_index in [0, {len(prompt)}), got {prompt_index!r}.")
    prompt = prompt[prompt_index]
  heads = layers = None
  if model_dir:
    base_model_name_or_path = base_model_name_or_path or meta.get("initial_checkpoint_path")
    config = meta.get("model_config") or {}
    heads, layers = config.get("num_heads"), config.get("num_encoder_layers")
  return peft.save_adapter(output_dir, prompt, num_heads=heads, num_layers=layers,
                           base_model_name_or_path=base_model_name_or_path,
                           num_transformer_submodules=num_transformer_submodules,
                           overwrite=overwrite)


def _export_method(output_dir: str, meta: dict, flat: dict, where: str,
                   base_model_name_or_path: Optional[str], overwrite: bool) -> str:
  """A LoRA or IA3 run's params as a PEFT adapter (`checkpoints.peft_adapters`)."""
  spec = AdapterSpec.from_json(meta["adapters"])
  if spec.methods not in (("lora",), ("ia3",)):
    raise ValueError(f"{where} was trained with {', '.join(spec.methods)}; PEFT adapters are "
                     "written for LoRA or IA3 alone. Export it with --format=npy.")
  model = Transformer(T5Config(**meta["model_config"]), adapters=spec)
  others = sorted(p for p in flat if not spec.method_of(p))
  if others:
    raise ValueError(f"{where} holds {others[:3]} beside the {', '.join(spec.methods)} params; "
                     "a PEFT LoRA / IA3 adapter holds one method alone. Export it with "
                     "--format=npy.")
  return peft_adapters.save_adapter(
      output_dir, model, tree.unflatten(flat),
      base_model_name_or_path=base_model_name_or_path or meta.get("initial_checkpoint_path"),
      overwrite=overwrite)


def main(argv: Optional[list] = None) -> int:
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  out = export_prompt(output_dir=args.output_dir, fmt=args.format, model_dir=args.model_dir,
                      prompt_file=args.prompt_file, checkpoint=args.checkpoint,
                      base_model_name_or_path=args.base_model_name_or_path,
                      num_transformer_submodules=args.num_transformer_submodules,
                      prompt_index=args.prompt_index, overwrite=args.overwrite)
  print(f"{args.format} prompt written to {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
