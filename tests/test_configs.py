"""Every gin file parses, says what it provides and requires, and binds what it says."""
import glob
import os

import gin
import pytest

from prompt_tuning import paths
from prompt_tuning.cli import configurables
from prompt_tuning.models import sizes
from prompt_tuning.cli import flags

CONFIGS = paths.config_dir()
ALL = sorted(os.path.relpath(f, CONFIGS) for f in glob.glob(f"{CONFIGS}/*/*.gin"))
REQUIRED = ["MODEL_DIR='/tmp/x'", "MIXTURE_OR_TASK_NAME='t'",
            "INITIAL_CHECKPOINT_PATH='/ckpt'", "CLASS_LABELS=['a', 'b']",
            "PROMPT_TEXT='hello'", "PROMPT_FILE='/tmp/p.npy'"]


def _parse(files, bindings=()):
  configurables.register()
  gin.clear_config()
  gin.add_config_file_search_path(CONFIGS)
  gin.parse_config_files_and_bindings(files, list(bindings), finalize_config=False)


def test_the_issue_named_files_exist():
  for size in ("small", "base", "large", "xl", "xxl"):
    assert f"models/t5_1_1_{size}_prompt.gin" in ALL
  for name in ("runs/prompt_tune.gin", "runs/demo.gin", "prompts/random_uniform.gin",
               "prompts/sampled_vocab.gin", "prompts/from_class_labels.gin",
               "prompts/from_text.gin", "prompts/from_file.gin"):
    assert name in ALL


@pytest.mark.parametrize("name", ALL)
def test_each_file_has_a_header_saying_what_it_provides_and_requires(name):
  head = open(os.path.join(CONFIGS, name)).read().split("from __gin__")[0]
  assert head.startswith("#") and "Provides" in head and "Requires" in head, name


@pytest.mark.parametrize("size,dim", [("small", 512), ("base", 768), ("large", 1024),
                                      ("xl", 2048), ("xxl", 4096)])
def test_model_files_bind_their_size(size, dim):
  _parse([f"models/t5_1_1_{size}_prompt.gin", "prompts/random_uniform.gin",
          "runs/prompt_tune.gin"], REQUIRED[:3])
  config = gin.get_configurable(sizes.get_config)()
  assert config.emb_dim == dim and config.vocab_size == 32128
  assert gin.query_parameter("%STEP_OFFSET") == 1100000
  assert gin.query_parameter("%LEARNING_RATE") == 0.3


FAMILY_FILES = [(family, size) for family, names in sizes.FAMILIES.items() for size in names
                if size != "tiny"]


@pytest.mark.parametrize("family,size", FAMILY_FILES)
def test_every_family_and_size_has_a_file_that_builds_its_config(family, size):
  # Each size file includes its family's file and differs from its siblings in the size only.
  name = f"models/{family}_{size}_prompt.gin"
  text = open(os.path.join(CONFIGS, name)).read()
  assert f"include 'models/{family}_prompt.gin'" in text
  assert f'sizes.get_config.name = "{size}"' in text
  release = sizes.release(family, size)
  assert release["hf_id"] in text and release["t5x_path"] in text
  _parse([name, "prompts/random_uniform.gin", "runs/prompt_tune.gin"], REQUIRED[:3])
  config = gin.get_configurable(sizes.get_config)()
  assert config == sizes.get_config(size, family, dtype="bfloat16")
  # The vocabulary is not built (that reads GCS); the file names the family's model.
  assert gin.query_parameter("seqio.SentencePieceVocabulary.sentencepiece_model_file") == \
      release["vocabulary"]


@pytest.mark.parametrize("prompt_file", [f for f in ALL if f.startswith("prompts/")])
def test_each_prompt_file_parses_with_a_model_and_the_paper_run(prompt_file):
  _parse(["models/t5_1_1_small_prompt.gin", prompt_file, "runs/prompt_tune.gin"], REQUIRED)
  assert gin.query_parameter("%PROMPT_INIT") is not None


def test_demo_run_file_parses_and_overrides_last():
  _parse(["runs/demo.gin"])
  assert gin.query_parameter("%MIXTURE_OR_TASK_NAME") == "taskless_demo_majority"
  assert gin.query_parameter("%TRAIN_STEPS") == 300
  assert gin.query_parameter("%STEP_OFFSET") == 0


def test_cli_flags_parse_like_t5x_and_missing_files_are_named():
  args = flags.parse_flags(["--gin_file=runs/demo.gin", "--gin.TRAIN_STEPS=5",
                                 "--gin.MODEL_DIR='/tmp/a'", "--tfds_data_dir=/data"])
  assert args.gin_file == ["runs/demo.gin"] and args.tfds_data_dir == "/data"
  assert args.bindings == ["TRAIN_STEPS = 5", "MODEL_DIR = '/tmp/a'"]
  with pytest.raises(FileNotFoundError, match="'runs/nope.gin' not found"):
    flags.setup_gin(flags.parse_flags(["--gin_file=runs/nope.gin"]))
  with pytest.raises(SystemExit):
    flags.parse_flags(["--gin.TRAIN_STEPS=5"])
