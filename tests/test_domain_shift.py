"""`prompt-tuning domain-shift` end to end on the tiny T5 and hand-written MRQA examples.

Trains on MRQA's SQuAD through configs/runs/mrqa_domain_shift.gin (the real gin
stack, tiny sizes bound on the command line), then evaluates the best prompt on
every domain; the table must hold one row per domain whose EM and F1 are
`metrics.squad` of that domain's written predictions against its gold answers
(a random tiny model answers nonsense: the gold answers are made so that its F1
is not 0, and each domain has its own number of examples).
"""
import json
import os

import gin
import pytest

import data_fixtures as fx
from prompt_tuning import cli
from prompt_tuning.cli import flags
from prompt_tuning.data import metrics, mrqa
from prompt_tuning.eval import domain_shift
from prompt_tuning.testing import tiny

TINY = ["--gin_file=models/t5_1_1_tiny_prompt.gin", "--gin_file=prompts/sampled_vocab.gin",
        "--gin_file=runs/mrqa_domain_shift.gin", "--gin.TRAIN_STEPS=4", "--gin.BATCH_SIZE=2",
        "--gin.PROMPT_LENGTH=2", "--gin.EVAL_PERIOD=2", "--gin.STEP_OFFSET=0",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}"]


# Every word the tiny vocabulary decodes to (UNK too): any non-empty prediction shares a
# token with it, so F1 > 0 and EM = 0 whatever the random model says.
EVERY_WORD = " ".join(tiny.WORDS[1:] + ("UNK",))


def _gold(domain: mrqa.Domain, index: int) -> list:
  return fx.QA[domain.config][2] if index == 0 else ["cat", EVERY_WORD]


def _served() -> dict:
  """The fixture's example, then one more per position in DEFAULT_DOMAINS (1 to 7 in all),
  so each row's example count says which domain it read."""
  out = {}
  for domain in mrqa.DOMAINS:
    question, context, _ = fx.QA[domain.config]
    count = 1 + domain_shift.DEFAULT_DOMAINS.index(domain.config) if (
        domain.config in domain_shift.DEFAULT_DOMAINS) else 1
    rows = [fx.mrqa_raw(f"{domain.config}-{i}", question if i == 0 else "red cat",
                        context if i == 0 else "red cat dog", _gold(domain, i))
            for i in range(count)]
    for split in (["train", "validation"] if domain.in_domain else ["test"]):
      out[(f"mrqa/{domain.config}", split)] = rows
  return out


@pytest.fixture(scope="module")
def frozen_dir(tmp_path_factory):
  return tiny.write_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_t5")))


@pytest.mark.slow  # seven evaluations, each loading the model and compiling its decoder
def test_one_command_trains_on_squad_and_writes_one_row_per_domain(tmp_path, frozen_dir,
                                                                   capsys):
  # Three of the seven domains, out of the default order (the run file's default list:
  # test_the_run_file_tunes_on_squad_by_f1_and_evaluates_the_papers_domains).
  argv = ["domain-shift", *TINY, f"--gin.MODEL_DIR='{tmp_path}'",
          f"--gin.INITIAL_CHECKPOINT_PATH='{frozen_dir}'", "--debug",
          "--gin.DOMAIN_SHIFT_DOMAINS=['squad', 'drop', 'textbook_qa']"]
  with fx.serve(_served()):
    assert cli.main(argv) == 0
  out = capsys.readouterr().out
  table_dir = tmp_path / "eval" / "domain_shift"
  rows = domain_shift.read_table(str(table_dir))
  assert [r["config"] for r in rows] == ["squad", "drop", "textbook_qa"]
  assert [r["domain"] for r in rows] == ["SQuAD", "DROP", "TextbookQA"]
  assert [r["split"] for r in rows] == ["validation", "test", "test"]
  assert [r["examples"] for r in rows] == [1, 7, 2]  # each read its own domain's rows
  assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
  assert os.path.isfile(tmp_path / "best" / "encoder.prompt.prompt.npy")
  for row in rows:
    (name,) = [n for n in os.listdir(table_dir / row["config"])
               if n.endswith("_predictions.jsonl")]
    lines = (table_dir / row["config"] / name).read_text().splitlines()
    predictions = [p["prediction"] for p in sorted(map(json.loads, lines),
                                                   key=lambda p: p["index"])]
    domain = mrqa.get_domain(row["config"])
    want = metrics.squad([_gold(domain, i) for i in range(len(predictions))], predictions)
    assert (row["exact_match"], row["f1"]) == (want["exact_match"], want["f1"]), row
    assert row["f1"] > 0 or row["examples"] == 1, row  # the numbers are not all zero
  markdown = (table_dir / "domain_shift.md").read_text()
  assert markdown.splitlines()[0] == "| domain | task | split | examples | EM | F1 |"
  assert len(markdown.splitlines()) == 2 + 3 and "| SQuAD (in domain) | mrqa_squad_v100 |" in out
  assert "| DROP | mrqa_drop_v100 | test | 7 |" in markdown


def test_the_run_file_tunes_on_squad_by_f1_and_evaluates_the_papers_domains():
  args = flags.parse_flags(["--gin_file=models/t5_1_1_base_prompt.gin",
                            "--gin_file=prompts/sampled_vocab.gin",
                            "--gin_file=runs/mrqa_domain_shift.gin",
                            "--gin.MODEL_DIR='/tmp/x'", "--gin.INITIAL_CHECKPOINT_PATH='/ckpt'"])
  flags.setup_gin(args)
  assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == "mrqa_squad_v100"
  assert gin.query_parameter("loop.train.eval_metric") == "f1"
  assert gin.query_parameter("%TRAIN_STEPS") == 30000  # runs/prompt_tune.gin's, included
  domains = gin.query_parameter("%DOMAIN_SHIFT_DOMAINS")
  assert tuple(domains) == domain_shift.DEFAULT_DOMAINS
  assert [d.title for d in mrqa.get_domains(domains)][1:] == [
      "TextbookQA", "BioASQ", "RACE", "RelationExtraction", "DuoRC", "DROP"]
  gin.clear_config()


def test_markdown_rows_by_hand():
  rows = [{"domain": "SQuAD", "in_domain": True, "task": "mrqa_squad_v100", "split": "validation",
           "examples": 10, "exact_match": 50.0, "f1": 200 / 3},
          {"domain": "DROP", "in_domain": False, "task": "mrqa_drop_v100", "split": "test",
           "examples": 3, "exact_match": 0.0, "f1": 12.345}]
  assert domain_shift.markdown(rows).splitlines()[2:] == [
      "| SQuAD (in domain) | mrqa_squad_v100 | validation | 10 | 50.0 | 66.7 |",
      "| DROP | mrqa_drop_v100 | test | 3 | 0.0 | 12.3 |"]


def test_an_unknown_domain_is_refused_before_anything_trains(tmp_path, frozen_dir, capsys):
  argv = ["domain-shift", *TINY, f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
          f"--gin.INITIAL_CHECKPOINT_PATH='{frozen_dir}'",
          "--gin.DOMAIN_SHIFT_DOMAINS=['squad', 'textbok_qa']"]
  assert cli.main(argv) == 1
  err = capsys.readouterr().err
  assert "unknown MRQA domain 'textbok_qa'; did you mean 'textbook_qa'? expected one of" in err
  assert not os.path.exists(tmp_path / "run")
  with pytest.raises(ValueError, match="expected a run's MODEL_DIR or a prompt file"):
    domain_shift.evaluate_domains(task_feature_lengths={"inputs": 8, "targets": 2},
                                  initial_checkpoint_path=frozen_dir)
