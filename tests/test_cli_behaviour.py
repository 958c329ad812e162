"""The CLI as a new user meets it: typos caught, one-message errors, a demo
directory from another install, files named in library errors (quiet success:
tests/test_demo.py runs the demo command as a user does)."""
import json
import os
import shutil

import pytest

from prompt_tuning import checkpoints, cli, paths
from prompt_tuning.checkpoints import run_dir
from prompt_tuning.cli import demo, quiet, train as train_cli
from prompt_tuning.testing import tiny


def test_a_typod_macro_fails_before_anything_runs_with_a_did_you_mean(tmp_path, capsys):
  code = cli.main(["train", "--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{tmp_path}/run'",
                   "--gin.TRAIN_STPES=5"])
  err = capsys.readouterr().err
  assert code == 1
  assert "--gin.TRAIN_STPES: no gin file or binding of this run reads the macro " \
         "TRAIN_STPES; did you mean TRAIN_STEPS?" in err
  assert "Traceback" not in err and not os.path.exists(tmp_path / "run")


def test_a_typod_parameter_is_refused_by_gin_before_anything_runs(tmp_path, capsys):
  code = cli.main(["train", "--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{tmp_path}/run'",
                   "--gin.loop.train.checkpont_period=5"])
  err = capsys.readouterr().err
  assert code == 1 and "doesn't have a parameter named 'checkpont_period'" in err
  assert not os.path.exists(tmp_path / "run")


def test_errors_are_one_message_and_debug_shows_the_traceback(tmp_path, capsys):
  argv = ["train", "--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{tmp_path}/run'",
          "--gin.MIXTURE_OR_TASK_NAME='no_such_task'"]
  assert cli.main(argv) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[0].startswith("prompt-tuning train: MIXTURE_OR_TASK_NAME='no_such_task' is not "
                           "a registered seqio task or mixture")
  assert err[-1] == "(--debug shows the traceback)" and len(err) == 2
  assert not any("In call to configurable" in line for line in err)
  with pytest.raises(ValueError, match="no_such_task"):
    cli.main(argv + ["--debug"])


def test_error_message_keeps_the_message_and_names_other_types():
  assert quiet.error_message(ValueError("x=1; expected 2.\n  In call to configurable 'f' (<f>)")) \
      == "x=1; expected 2."
  assert quiet.error_message(FileNotFoundError("/a: missing")) == \
      "FileNotFoundError: /a: missing"


def test_library_errors_name_the_file_and_what_was_expected(tmp_path):
  ckpt = tiny.write_tiny_checkpoint(str(tmp_path / "t5"))
  cut = shutil.copytree(ckpt, tmp_path / "cut")
  weights = cut / "model.safetensors"
  with open(weights, "r+b") as f:
    f.truncate(os.path.getsize(weights) // 2)
  with pytest.raises(ValueError, match=rf"{weights}: cannot read it as safetensors .* truncated"):
    checkpoints.load(str(cut))
  bad = shutil.copytree(ckpt, tmp_path / "bad_json")
  (bad / "config.json").write_text('{"d_model": 16,')
  with pytest.raises(ValueError, match=rf"{bad / 'config.json'}: not valid JSON .* expected a "
                                       r"Hugging Face T5 config.json"):
    checkpoints.load(str(bad))
  (bad / "config.json").write_text("[1, 2]")
  with pytest.raises(ValueError, match="holds a JSON list; expected an object"):
    checkpoints.load(str(bad))


def test_the_demo_starts_fresh_over_a_demo_run_from_another_install(tmp_path):
  # Another install's demo model lived elsewhere: its run names that path.
  other_install = shutil.copytree(paths.demo_model_dir(), tmp_path / "old_site" / "demo_t5")
  out = tmp_path / "demo"
  train_cli.run_train(["--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{out}'",
                       f"--gin.INITIAL_CHECKPOINT_PATH='{other_install}'", "--gin.TRAIN_STEPS=2",
                       "--gin.EVAL_PERIOD=0"], progress=False)
  assert run_dir.read_meta(str(out))["initial_checkpoint_path"] == str(other_install)
  lines = []
  result = demo.run(str(out), train_steps=4, eval_period=4, progress=False, log=lines.append)
  assert any("cannot be resumed" in line and "starting fresh" in line for line in lines)
  assert run_dir.read_meta(str(out))["initial_checkpoint_path"] == paths.demo_model_dir()
  assert os.path.isfile(result.prompt_path)
  # (A compatible demo run is resumed, not restarted: tests/test_demo.py.)


def test_the_demo_refuses_a_directory_holding_another_kind_of_run(tmp_path):
  ckpt = tiny.write_tiny_checkpoint(str(tmp_path / "t5"))
  out = tmp_path / "not_a_demo"
  train_cli.run_train([
      "--gin_file=models/t5_1_1_tiny_prompt.gin", "--gin_file=prompts/random_uniform.gin",
      "--gin_file=runs/prompt_tune.gin", "--gin_file=runs/tiny_test.gin",
      f"--gin.MODEL_DIR='{out}'", f"--gin.INITIAL_CHECKPOINT_PATH='{ckpt}'",
      "--gin.TRAIN_STEPS=2", "--gin.EVAL_PERIOD=0"], progress=False)
  with pytest.raises(ValueError, match=rf"--output_dir={out} holds another run"):
    demo.run(str(out), train_steps=2, progress=False, log=lambda _: None)
  assert run_dir.numpy_steps(str(out)) == [2]  # left as it was


def test_notebooks_install_the_package_from_a_source_the_user_sets():
  for name in ("quickstart.ipynb", "superglue_reproduction.ipynb"):
    root = os.path.dirname(os.path.dirname(paths.config_dir()))
    nb = json.load(open(os.path.join(root, "notebooks", name)))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "pip install -q prompt-tuning" not in code
    assert "PROMPT_TUNING_SOURCE" in code and "pip install -q {PROMPT_TUNING_SOURCE}" in code
    # The source is a parameter, set before the install runs.
    params = next(i for i, c in enumerate(nb["cells"])
                  if "parameters" in c.get("metadata", {}).get("tags", []))
    install = next(i for i, c in enumerate(nb["cells"])
                   if "pip install" in "".join(c["source"]))
    assert "PROMPT_TUNING_SOURCE =" in "".join(nb["cells"][params]["source"]) and install > params
