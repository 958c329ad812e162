"""SuperGLUE, GLUE, SQuAD and MRQA as seqio tasks in T5's text-to-text form.

Nothing is registered on import: `register_tasks(vocabulary=...)` registers
every task and mixture, with the model's VOCABULARY (T5's by default, read
lazily: nothing is fetched until text is tokenized), and replaces what an
earlier call registered. Every entry point calls it: the run configs through
REGISTER_TASKS, `prompt-tuning show-tasks`, the notebooks.

Names (one row of `TASKS` each):
  super_glue_<name>_v102            input starts with the task word (T5)
  taskless_super_glue_<name>_v102   task word left out (the paper's setting)
  glue_<name>_v200, taskless_glue_<name>_v200
  <any of those>_rank_classification
      every option scored, argmax (classification tasks; COPA ranks its choices)
  glue_mrpc_from_qqp_v200, glue_qqp_from_mrpc_v200 (+ taskless_)
      zero-shot transfer (paper section 5): the other dataset's validation
      split, answered in the training task's label words
  squad_v11_v300                    SQuAD v1.1 (TFDS squad/v1.1:3.0.0),
      "question: <q> context: <c>" -> answer, scored by SQuAD EM and F1 against
      every gold answer; no task word, so no taskless_ variant
  mrqa_<domain>_v100                the MRQA 2019 sets (TFDS mrqa 1.0.0, see
      `prompt_tuning.data.mrqa`): in-domain train + validation, out-of-domain
      test only; as SQuAD
Mixtures (training examples-proportional): super_glue_v102, glue_v200,
glue_mrpc_from_qqp_zeroshot_v200, glue_qqp_from_mrpc_zeroshot_v200 (+ taskless_).

Splits are TFDS's (super_glue 1.0.2, glue 2.0.0, squad 3.0.0, mrqa 1.0.0),
with two training-only rules: WSC trains on the examples whose candidate is
the referent, ReCoRD on one example per gold answer; validation and test keep every example. Those
rules need the split, so each task's formatting runs in its data source
(`FormattedTfdsSource`); the seqio preprocessors only tokenize and append EOS
(after trimming, so a truncated input still ends in EOS).
"""
import dataclasses
import functools
import types
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import seqio
import tensorflow as tf

from prompt_tuning.data import metrics, mrqa, postprocessors, preprocessors, verbalizers
from prompt_tuning.data import vocab as vocab_lib

TASKLESS_PREFIX = "taskless_"
RANK_SUFFIX = "_rank_classification"

KINDS = ("glue", "stsb", "record", "wsc", "qa")
_SG = {"train": "train", "validation": "validation", "test": "test"}
_TEST = {"test": "test"}
_EVAL = {"validation": "validation", "test": "test"}
_TRAIN_VALIDATION = {"train": "train", "validation": "validation"}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One row of the task table.

  Attributes:
    name: the registered name (`taskless_` and the rank suffix are added).
    tfds_name: TFDS dataset with config and version.
    splits: seqio split -> TFDS split.
    prefix: the task word(s) starting a T5 input ("rte" for AX-b, "wsc:"); "" for
      none (SQuAD, MRQA), and then there is no taskless variant.
    kind: "glue" (label words), "stsb", "record", "wsc" or "qa" (SQuAD, MRQA).
    label_space: the verbalizer's label space (kind "glue" only).
    feature_names: input features in order (kind "glue").
    rename: TFDS feature -> its name in the input.
    strip_markup: drop MultiRC's HTML tags.
    passthrough: raw features kept in the examples.
    group: example -> group of grouped metrics (MultiRC, AX-g).
    metric_fns: predict metrics.
    rank_options: "labels", "choices" (COPA) or None (no rank variant).
    num_train_examples: training examples (mixing rate; 0 for eval-only).
  """
  name: str
  tfds_name: str
  splits: Mapping[str, str]
  prefix: str
  kind: str = "glue"
  label_space: Optional[str] = None
  feature_names: tuple[str, ...] = ()
  rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
  strip_markup: bool = False
  passthrough: tuple[str, ...] = ()
  group: Optional[Callable[[Mapping[str, Any]], Any]] = None
  metric_fns: tuple[Callable[..., dict], ...] = ()
  rank_options: Optional[str] = "labels"
  num_train_examples: int = 0

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"{self.name}: kind={self.kind!r}; expected one of {KINDS}.")
    if (self.kind == "glue") != (self.label_space is not None):
      raise ValueError(f"{self.name}: label_space={self.label_space!r}; expected one exactly "
                       "for kind 'glue' (label words).")
    if self.rank_options not in (None, "labels", "choices") or (
        self.rank_options and self.kind != "glue"):
      raise ValueError(f"{self.name}: rank_options={self.rank_options!r}; expected None, or "
                       "'labels' / 'choices' for kind 'glue'.")


_ACC = (metrics.accuracy, metrics.illegal_label_rate)
_F1_ACC = (metrics.f1, metrics.accuracy, metrics.illegal_label_rate)
_MCC = (metrics.matthews_corrcoef, metrics.illegal_label_rate)
_MNLI_SPLITS = {"train": "train", "validation": "validation_matched",
                "validation_matched": "validation_matched",
                "validation_mismatched": "validation_mismatched",
                "test_matched": "test_matched", "test_mismatched": "test_mismatched"}

# Training sizes: SuperGLUE / GLUE train splits (ReCoRD: one per answer; WSC:
# correct referents only), as in T5's mixtures.
TASKS: tuple[TaskSpec, ...] = (
    # ------------------------------------------------------------ SuperGLUE
    TaskSpec("super_glue_boolq_v102", "super_glue/boolq:1.0.2", _SG, "boolq",
             label_space="super_glue_boolq", feature_names=("passage", "question"),
             metric_fns=_ACC, num_train_examples=9_427),
    TaskSpec("super_glue_cb_v102", "super_glue/cb:1.0.2", _SG, "cb",
             label_space="super_glue_cb", feature_names=("hypothesis", "premise"),
             metric_fns=(metrics.accuracy, metrics.macro_f1(3), metrics.illegal_label_rate),
             num_train_examples=250),
    TaskSpec("super_glue_copa_v102", "super_glue/copa:1.0.2", _SG, "copa",
             label_space="super_glue_copa",
             feature_names=("choice1", "choice2", "premise", "question"),
             passthrough=("choice1", "choice2"), metric_fns=_ACC, rank_options="choices",
             num_train_examples=400),
    TaskSpec("super_glue_multirc_v102", "super_glue/multirc:1.0.2", _SG, "multirc",
             label_space="super_glue_multirc", feature_names=("question", "answer", "paragraph"),
             strip_markup=True, group=postprocessors.multirc_question,
             metric_fns=(metrics.multirc, metrics.illegal_label_rate),
             num_train_examples=27_243),
    TaskSpec("super_glue_record_v102", "super_glue/record:1.0.2", _SG, "record", kind="record",
             metric_fns=(metrics.record,), rank_options=None, num_train_examples=138_854),
    TaskSpec("super_glue_rte_v102", "super_glue/rte:1.0.2", _SG, "rte",
             label_space="super_glue_rte", feature_names=("hypothesis", "premise"),
             metric_fns=_ACC, num_train_examples=2_490),
    TaskSpec("super_glue_wic_v102", "super_glue/wic:1.0.2", _SG, "wic",
             label_space="super_glue_wic", feature_names=("sentence1", "sentence2", "word"),
             metric_fns=_ACC, num_train_examples=5_428),
    TaskSpec("super_glue_wsc_v102", "super_glue/wsc.fixed:1.0.2", _SG, "wsc:", kind="wsc",
             metric_fns=(metrics.accuracy,), rank_options=None, num_train_examples=259),
    TaskSpec("super_glue_axb_v102", "super_glue/axb:1.0.2", _TEST, "rte",
             label_space="super_glue_rte", feature_names=("hypothesis", "premise"),
             rename={"sentence1": "premise", "sentence2": "hypothesis"}, metric_fns=_MCC),
    TaskSpec("super_glue_axg_v102", "super_glue/axg:1.0.2", _TEST, "rte",
             label_space="super_glue_rte", feature_names=("hypothesis", "premise"),
             passthrough=("hypothesis",), group=postprocessors.gender_pair,
             metric_fns=(metrics.accuracy, metrics.gender_parity, metrics.illegal_label_rate)),
    # ----------------------------------------------------------------- GLUE
    TaskSpec("glue_cola_v200", "glue/cola:2.0.0", _SG, "cola", label_space="glue_cola",
             feature_names=("sentence",), metric_fns=_MCC, num_train_examples=8_551),
    TaskSpec("glue_sst2_v200", "glue/sst2:2.0.0", _SG, "sst2", label_space="glue_sst2",
             feature_names=("sentence",), metric_fns=_ACC, num_train_examples=67_349),
    TaskSpec("glue_mrpc_v200", "glue/mrpc:2.0.0", _SG, "mrpc", label_space="glue_mrpc",
             feature_names=("sentence1", "sentence2"), metric_fns=_F1_ACC,
             num_train_examples=3_668),
    TaskSpec("glue_qqp_v200", "glue/qqp:2.0.0", _SG, "qqp", label_space="glue_qqp",
             feature_names=("question1", "question2"), metric_fns=_F1_ACC,
             num_train_examples=363_849),
    TaskSpec("glue_stsb_v200", "glue/stsb:2.0.0", _SG, "stsb", kind="stsb",
             metric_fns=(metrics.pearson_corrcoef, metrics.spearman_corrcoef,
                         metrics.unparsable_rate),
             rank_options=None, num_train_examples=5_749),
    TaskSpec("glue_mnli_v200", "glue/mnli:2.0.0", _MNLI_SPLITS, "mnli", label_space="glue_mnli",
             feature_names=("hypothesis", "premise"), metric_fns=_ACC,
             num_train_examples=392_702),
    TaskSpec("glue_mnli_matched_v200", "glue/mnli_matched:2.0.0", _EVAL, "mnli",
             label_space="glue_mnli", feature_names=("hypothesis", "premise"), metric_fns=_ACC),
    TaskSpec("glue_mnli_mismatched_v200", "glue/mnli_mismatched:2.0.0", _EVAL, "mnli",
             label_space="glue_mnli", feature_names=("hypothesis", "premise"), metric_fns=_ACC),
    TaskSpec("glue_qnli_v200", "glue/qnli:2.0.0", _SG, "qnli", label_space="glue_qnli",
             feature_names=("question", "sentence"), metric_fns=_ACC,
             num_train_examples=104_743),
    TaskSpec("glue_rte_v200", "glue/rte:2.0.0", _SG, "rte", label_space="glue_rte",
             feature_names=("sentence1", "sentence2"), metric_fns=_ACC,
             num_train_examples=2_490),
    TaskSpec("glue_wnli_v200", "glue/wnli:2.0.0", _SG, "wnli", label_space="glue_wnli",
             feature_names=("sentence1", "sentence2"), metric_fns=_ACC,
             num_train_examples=635),
    # GLUE's diagnostic is unlabelled in TFDS (test only): predictions, no metrics.
    TaskSpec("glue_ax_v200", "glue/ax:2.0.0", _TEST, "mnli", label_space="glue_mnli",
             feature_names=("hypothesis", "premise"), rank_options=None),
    # Zero-shot transfer: inputs as the dataset's own task, label words of the source.
    TaskSpec("glue_mrpc_from_qqp_v200", "glue/mrpc:2.0.0", {"validation": "validation"}, "mrpc",
             label_space="glue_qqp", feature_names=("sentence1", "sentence2"),
             metric_fns=_F1_ACC),
    TaskSpec("glue_qqp_from_mrpc_v200", "glue/qqp:2.0.0", {"validation": "validation"}, "qqp",
             label_space="glue_mrpc", feature_names=("question1", "question2"),
             metric_fns=_F1_ACC),
    # ---------------------------------------------------------- SQuAD, MRQA
    TaskSpec("squad_v11_v300", "squad/v1.1:3.0.0", _TRAIN_VALIDATION, "", kind="qa",
             metric_fns=(metrics.squad,), rank_options=None, num_train_examples=87_599),
    *(TaskSpec(d.task, d.tfds_name, _TRAIN_VALIDATION if d.in_domain else _TEST, "",
               kind="qa", metric_fns=(metrics.squad,), rank_options=None,
               num_train_examples=d.num_train_examples) for d in mrqa.DOMAINS),
)

# mixture -> its tasks (mixed by num_train_examples; eval-only tasks are
# evaluated, never trained on).
MIXTURES: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "super_glue_v102": tuple(f"super_glue_{n}_v102" for n in (
        "boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc")),
    "glue_v200": tuple(f"glue_{n}_v200" for n in (
        "cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "mnli_mismatched", "qnli", "rte")),
    "glue_mrpc_from_qqp_zeroshot_v200": ("glue_qqp_v200", "glue_mrpc_from_qqp_v200"),
    "glue_qqp_from_mrpc_zeroshot_v200": ("glue_mrpc_v200", "glue_qqp_from_mrpc_v200"),
})

_SPECS = {spec.name: spec for spec in TASKS}
_REGISTERED: list[tuple[str, str]] = []  # (registry, name) of what register_tasks added


class FormattedTfdsSource(seqio.TfdsDataSource):
  """A TFDS source that yields the task's text-to-text examples, split-aware.

  `format_fn(dataset, split)` turns TFDS examples into examples with string
  `inputs` / `targets` (see `preprocessors`); it knows the split, so training
  can differ from evaluation (WSC, ReCoRD, rank classification).
  """

  def __init__(self, tfds_name: str, splits: Mapping[str, str],
               format_fn: Callable[[tf.data.Dataset, str], tf.data.Dataset],
               tfds_data_dir: Optional[str] = None):
    super().__init__(tfds_name=tfds_name, splits=dict(splits), tfds_data_dir=tfds_data_dir)
    self._format_fn = format_fn

  def get_dataset(self, split=None, shuffle=True, seed=None, shard_info=None, **kwargs):
    split = split or "train"
    ds = super().get_dataset(split, shuffle, seed, shard_info, **kwargs)
    return self._format_fn(ds, split)

  def num_input_examples(self, split: str) -> Optional[int]:
    """TFDS examples in `split` (before formatting), None when TFDS has no split info.

    seqio only uses this to decide on in-memory caching; a dataset that is
    not prepared yet (or is mocked in tests) has no split info.
    """
    try:
      return super().num_input_examples(split)
    except KeyError:
      return None


def _format(ds: tf.data.Dataset, split: str, *, spec: TaskSpec, task: str,
            taskless: bool, rank: bool) -> tf.data.Dataset:
  """TFDS examples of `split` -> the task's text examples (verbalizer read now)."""
  prefix = None if taskless else spec.prefix
  train = split == "train"
  if spec.kind == "glue":
    labels = verbalizers.get_verbalizer(spec.label_space).labels
    ds = preprocessors.glue(ds, task=task, prefix=prefix, feature_names=spec.feature_names,
                            labels=labels, rename=spec.rename, strip_markup=spec.strip_markup,
                            passthrough=spec.passthrough)
  elif spec.kind == "stsb":
    ds = preprocessors.stsb(ds, prefix=prefix)
  elif spec.kind == "qa":
    ds = preprocessors.question_context(ds)
  elif spec.kind == "record":
    ds = preprocessors.record(ds, prefix=prefix)
    if train:
      ds = preprocessors.split_answers(ds)
  else:  # "wsc" (TaskSpec checks the kind)
    if train:
      ds = preprocessors.keep_correct_referents(ds)
    ds = preprocessors.wsc_simple(ds, prefix=prefix)
  if rank:
    if spec.rank_options == "choices":
      options = lambda x: tf.stack([x["choice1"], x["choice2"]])
    else:
      words = tf.constant(list(labels))
      options = lambda x: words
    ds = preprocessors.rank_classification(ds, options=options, train=train)
  return ds


def _postprocessor(spec: TaskSpec) -> Callable[..., Any]:
  if spec.kind == "stsb":
    return postprocessors.score
  if spec.kind == "record":
    return postprocessors.record_answer
  if spec.kind == "qa":
    return postprocessors.answers
  if spec.kind == "wsc":
    return postprocessors.wsc_referent
  if spec.group is not None:
    return postprocessors.grouped_class_id(spec.label_space, spec.group)
  return postprocessors.class_id(spec.label_space)


def task_name(spec_name: str, taskless: bool = False, rank: bool = False) -> str:
  """e.g. ("super_glue_cb_v102", taskless=True, rank=True) ->
  "taskless_super_glue_cb_v102_rank_classification"."""
  return f"{TASKLESS_PREFIX if taskless else ''}{spec_name}{RANK_SUFFIX if rank else ''}"


def task_names(rank: bool = True) -> list[str]:
  """Every task name `register_tasks` registers (not mixtures), in table order."""
  names = []
  for spec in TASKS:
    for taskless in _taskless_variants(spec):
      names.append(task_name(spec.name, taskless))
      if rank and spec.rank_options:
        names.append(task_name(spec.name, taskless, rank=True))
  return names


def _taskless_variants(spec: TaskSpec) -> tuple[bool, ...]:
  """(False, True): the task with and without its task word; (False,) without one."""
  return (False, True) if spec.prefix else (False,)


def mixture_names() -> list[str]:
  return [f"{prefix}{name}" for name in MIXTURES for prefix in ("", TASKLESS_PREFIX)]


def get_spec(name: str) -> TaskSpec:
  """The table row of a registered task name.

  Raises:
    ValueError: not one of ours (the closest names are listed).
  """
  base = name[len(TASKLESS_PREFIX):] if name.startswith(TASKLESS_PREFIX) else name
  base = base[:-len(RANK_SUFFIX)] if base.endswith(RANK_SUFFIX) else base
  if base not in _SPECS:
    raise ValueError(f"{name!r} is not a SuperGLUE/GLUE/SQuAD/MRQA task of "
                     "prompt_tuning.data.tasks; "
                     f"expected one of {task_names()[:4]} ... ({len(task_names())} tasks).")
  return _SPECS[base]


def register_tasks(vocabulary: Union[None, str, seqio.Vocabulary] = None,
                   label_words: Optional[Mapping[str, Sequence[str]]] = None,
                   tfds_data_dir: Optional[str] = None) -> list[str]:
  """(Re-)registers every task and mixture; the previous ones are replaced.

  Args:
    vocabulary: the vocabulary of inputs and targets (VOCABULARY): a seqio
      vocabulary, a path for `vocab.get_vocabulary`, or None for T5's.
    label_words: {task or label space: words} overrides, applied first with
      `verbalizers.set_label_words` (all are checked before any is applied).
    tfds_data_dir: where TFDS data is prepared (None: TFDS's default).

  Returns:
    The registered task and mixture names.
  """
  if vocabulary is None or isinstance(vocabulary, str):
    vocabulary = vocab_lib.get_vocabulary(*(() if vocabulary is None else (vocabulary,)))
  label_words = dict(label_words or {})
  for name, words in label_words.items():
    verbalizers.check_label_words(name, words)
  for name, words in label_words.items():
    verbalizers.set_label_words(name, words)

  for registry, name in _REGISTERED:
    (seqio.TaskRegistry if registry == "task" else seqio.MixtureRegistry).remove(name)
  _REGISTERED.clear()

  features = {k: seqio.Feature(vocabulary, add_eos=True) for k in ("inputs", "targets")}
  pipeline = [seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
              seqio.preprocessors.append_eos_after_trim]
  for spec in TASKS:
    postprocess = _postprocessor(spec)
    for taskless in _taskless_variants(spec):
      for rank in ((False, True) if spec.rank_options else (False,)):
        name = task_name(spec.name, taskless, rank)
        fmt = functools.partial(_format, spec=spec, task=name, taskless=taskless, rank=rank)
        if rank:
          scored = tuple(f for f in spec.metric_fns if f is not metrics.illegal_label_rate)
          task_metrics = [metrics.rank_classification(scored)]
        else:
          task_metrics = list(spec.metric_fns)
        seqio.TaskRegistry.remove(name)
        seqio.TaskRegistry.add(
            name, source=FormattedTfdsSource(spec.tfds_name, spec.splits, fmt, tfds_data_dir),
            preprocessors=pipeline, output_features=features,
            postprocess_fn=postprocessors.rank_target(postprocess) if rank else postprocess,
            metric_fns=task_metrics)
        _REGISTERED.append(("task", name))

  for mixture, members in MIXTURES.items():
    for prefix in ("", TASKLESS_PREFIX):
      name = f"{prefix}{mixture}"
      rates = [(prefix + m, float(_SPECS[m].num_train_examples)) for m in members]
      seqio.MixtureRegistry.remove(name)
      seqio.MixtureRegistry.add(name, rates)
      _REGISTERED.append(("mixture", name))
  return [name for _, name in _REGISTERED]
