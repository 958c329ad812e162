"""`prompt-tuning nearest`: a learned prompt read through the vocabulary (paper section 7).

    prompt-tuning nearest --model_dir=/runs/rte [--checkpoint=best] [-k 5] \\
        [--json=/tmp/rte_nearest.json] [--png=/tmp/rte_norms.png]
    prompt-tuning nearest --prompt_file=prompt.npy --initial_checkpoint_path=/ckpt/t5-base \\
        --vocabulary=/ckpt/t5-base/spiece.model

For each prompt position: the k nearest vocabulary tokens of the frozen embedding
table by cosine similarity (strings and ids), and the position's norm beside the
embedding table's norm distribution. The frozen model defaults to the run's
INITIAL_CHECKPOINT_PATH, the vocabulary to the `spiece.model` in that (Hugging
Face) directory.
"""
import argparse
import json
import os
import sys
from typing import Optional

from prompt_tuning.checkpoints import frozen as frozen_lib, run_dir
from prompt_tuning.data import vocab as vocab_lib
from prompt_tuning.prompts import interpret
from prompt_tuning.prompts.spec import PROMPT_PATHS


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="prompt-tuning nearest", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument("--model_dir", help="a prompt-tuning run (MODEL_DIR)")
  source.add_argument("--prompt_file", help=".npy, a directory of prompt files, or a PEFT "
                      "adapter")
  p.add_argument("--checkpoint", default="best", help="best, latest or a step (with --model_dir)")
  p.add_argument("--initial_checkpoint_path", default=None,
                 help="the frozen model (default: the run's INITIAL_CHECKPOINT_PATH)")
  p.add_argument("--vocabulary", default=None,
                 help="SentencePiece .model or HF dir (default: the frozen model's dir)")
  p.add_argument("--extra_ids", type=int, default=None,
                 help="sentinel ids after the pieces (default: 100 for a T5 vocabulary of "
                      "32000 / 250000 pieces, else 0)")
  p.add_argument("-k", type=int, default=5, help="nearest tokens per position")
  p.add_argument("--json", default=None, help="also write the report as JSON here")
  p.add_argument("--png", default=None, help="also plot the norms to this PNG")
  return p


def nearest(*, model_dir: Optional[str] = None, prompt_file: Optional[str] = None,
            checkpoint="best", initial_checkpoint_path: Optional[str] = None,
            vocabulary: Optional[str] = None, extra_ids: Optional[int] = None,
            k: int = 5) -> tuple[list[dict], "object"]:
  """The `interpret` report of every saved prompt (and bank member), and the table."""
  flat, where = run_dir.read_prompt_source(model_dir or prompt_file, checkpoint)
  if model_dir and not initial_checkpoint_path:
    initial_checkpoint_path = run_dir.read_meta(model_dir).get("initial_checkpoint_path")
  if not initial_checkpoint_path:
    raise ValueError("--initial_checkpoint_path is required with --prompt_file: the frozen "
                     "model whose embedding table the prompt is read against.")
  _, frozen = frozen_lib.load_frozen(initial_checkpoint_path)
  table = frozen_lib.embedding_table(frozen)
  vocab = vocab_lib.checkpoint_vocabulary(vocabulary, initial_checkpoint_path, extra_ids)

  def decode(i: int) -> str:
    return vocab.decode([i]) if i < vocab.vocab_size else f"<row {i}: no token>"

  reports = []
  for path in [p for p in PROMPT_PATHS if p in flat]:
    for name, prompt in interpret.prompts_of(flat[path], path):
      if prompt.shape[1] != table.shape[1]:
        raise ValueError(f"{where}: {name} has shape {prompt.shape}; expected width "
                         f"d_model={table.shape[1]} of {initial_checkpoint_path}.")
      reports.append(interpret.interpret(prompt, table, decode, k, name))
  if not reports:
    raise ValueError(f"{where} holds no prompt; found {sorted(flat)}.")
  return reports, table


def main(argv: Optional[list] = None) -> int:
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  reports, table = nearest(model_dir=args.model_dir, prompt_file=args.prompt_file,
                           checkpoint=args.checkpoint,
                           initial_checkpoint_path=args.initial_checkpoint_path,
                           vocabulary=args.vocabulary, extra_ids=args.extra_ids, k=args.k)
  print("\n\n".join(interpret.format_table(r) for r in reports))
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(reports, f, indent=1, ensure_ascii=False)
    print(f"json: {args.json}")
  if args.png:
    print(f"png: {interpret.plot_norms(reports, table, args.png)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
