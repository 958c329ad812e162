"""`prompt-tuning show-tasks`: listing, examples with token counts, truncation, errors."""
import pytest

import data_fixtures as fx
from prompt_tuning import cli
from prompt_tuning.cli import show_tasks
from prompt_tuning.data import verbalizers


@pytest.fixture(autouse=True)
def _registered():
  yield
  fx.register_bytes()  # show-tasks re-registers with its own vocabulary


@pytest.fixture(scope="module")
def spm_path(tmp_path_factory):
  return fx.train_spm(str(tmp_path_factory.mktemp("spm")))


def test_lists_tasks_matching_a_filter(capsys, spm_path):
  assert cli.main(["show-tasks", "cb_v102"]) == 0  # T5's gs:// vocabulary is never read
  out = capsys.readouterr().out
  names = [line.split()[1] for line in out.splitlines() if line.startswith("task ")]
  assert names == ["super_glue_cb_v102", "super_glue_cb_v102_rank_classification",
                   "taskless_super_glue_cb_v102",
                   "taskless_super_glue_cb_v102_rank_classification"]
  assert "entailment | contradiction | neutral" in out and "4 tasks, 0 mixtures" in out
  assert show_tasks.main(["super_glue_v102", "--vocabulary", spm_path]) == 0
  assert "8 tasks: super_glue_boolq_v102" in capsys.readouterr().out
  assert show_tasks.main(["no_such_thing", "--vocabulary", spm_path]) == 1


def test_prints_examples_tokens_verbalizer_and_truncation(capsys, spm_path):
  verbalizers.set_label_words("super_glue_cb", ["yes", "no", "maybe"])
  raw = fx.EXAMPLES["super_glue_cb_v102"][1]
  served = {("super_glue/cb", "validation"): [raw, dict(raw, label=2, idx=5)]}
  with fx.serve(served):
    code = show_tasks.main(["--task", "taskless_super_glue_cb_v102", "-n", "2",
                            "--vocabulary", spm_path, "--inputs_length", "8"])
  out = capsys.readouterr().out
  assert code == 0, out
  assert "verbalizer (super_glue_cb): 0='yes'  1='no'  2='maybe'" in out
  assert "hypothesis: The train was late. premise: Anna said the train was late." in out
  assert "targets (" in out and "tokens): maybe" in out
  assert "metrics: accuracy, macro_f1_fn, illegal_label_rate" in out
  assert "truncated over 2 examples: inputs 2 (100.0%" in out


def test_errors_are_reported_with_what_was_expected(capsys, spm_path, tmp_path):
  assert show_tasks.main(["--task", "super_glue_cbb_v102", "--vocabulary", spm_path]) == 2
  assert "closest: ['super_glue_cb_v102'" in capsys.readouterr().out
  assert show_tasks.main(["--task", "super_glue_cb_v102", "--split", "dev",
                          "--vocabulary", spm_path]) == 2
  assert "no split 'dev'; expected one of ['train', 'validation', 'test']" in (
      capsys.readouterr().out)
  assert show_tasks.main(["--vocabulary", str(tmp_path / "missing.model")]) == 2
  assert "does not exist" in capsys.readouterr().err
  with fx.serve({}):  # nothing prepared for this dataset
    assert show_tasks.main(["--task", "glue_rte_v200", "--vocabulary", spm_path]) == 1
  assert "could not read glue_rte_v200 (validation)" in capsys.readouterr().out
