"""TFDS SuperGLUE / GLUE / SQuAD / MRQA examples -> T5's text-to-text examples (tf.data).

Every function maps a `tf.data.Dataset` of examples in TFDS's feature format
(super_glue 1.0.2, glue 2.0.0, squad 3.0.0, mrqa 1.0.0) to examples with string `inputs` and `targets`
plus what postprocessing and metrics need: `label` (int32 class id, -1 when
unlabelled), the example ids (`idx`, or `idx/<part>` for MultiRC and ReCoRD)
and any passthrough features.

Formats (T5's): inputs = "<task> <feature>: <value> <feature>: <value> ...";
`prefix=None` leaves the task word out (the paper's "taskless" setting), so
the taskless input is the T5 input minus its first word. Targets are the
verbalizer's label words; "<unk>" for unlabelled examples.
"""
from typing import Callable, Mapping, Optional, Sequence

import tensorflow as tf

from prompt_tuning.data.verbalizers import UNLABELED_TARGET

Example = dict[str, tf.Tensor]
AUTOTUNE = tf.data.AUTOTUNE


# ----------------------------------------------------------------- helpers
def _join(prefix: Optional[str], fields: Sequence[tuple[str, tf.Tensor]]) -> tf.Tensor:
  """"prefix name1: value1 name2: value2" (no prefix when it is None)."""
  parts = [prefix] if prefix else []
  for name, value in fields:
    parts += [f"{name}:", value]
  return tf.strings.join(parts, separator=" ")


def _ids(x: Mapping[str, tf.Tensor]) -> Example:
  """The example id: {"idx": id}, or {"idx/<part>": id} for a nested id."""
  idx = x["idx"]
  if isinstance(idx, Mapping):
    return {f"idx/{k}": tf.cast(v, tf.int32) for k, v in idx.items()}
  return {"idx": tf.cast(idx, tf.int32)}


def _label_text(label: tf.Tensor, labels: Sequence[str], task: str) -> tf.Tensor:
  """The word of class `label`; "<unk>" for -1; an error naming `task` otherwise."""
  label = tf.cast(label, tf.int32)
  check = tf.debugging.Assert(
      tf.logical_and(label >= -1, label < len(labels)),
      [f"{task}: label outside the verbalizer {list(labels)}; expected -1 (unlabelled) to "
       f"{len(labels) - 1}, found", label])
  with tf.control_dependencies([check]):
    label = tf.identity(label)
  words = tf.constant(list(labels))
  return tf.where(label < 0, tf.constant(UNLABELED_TARGET),
                  tf.gather(words, tf.maximum(label, 0)))


def _renamed(x: Mapping[str, tf.Tensor], rename: Optional[Mapping[str, str]]) -> Example:
  x = dict(x)
  for old, new in (rename or {}).items():
    x[new] = x.pop(old)
  return x


def _first_answer(answers: tf.Tensor) -> tf.Tensor:
  """The first of [A] gold answers, "<unk>" when there is none (unlabelled)."""
  return tf.cond(tf.size(answers) > 0, lambda: answers[0],
                 lambda: tf.constant(UNLABELED_TARGET))


# --------------------------------------------------------------- formats
def glue(ds: tf.data.Dataset, *, task: str, prefix: Optional[str],
         feature_names: Sequence[str], labels: Sequence[str],
         rename: Optional[Mapping[str, str]] = None, strip_markup: bool = False,
         passthrough: Sequence[str] = ()) -> tf.data.Dataset:
  """T5's generic GLUE/SuperGLUE classification format.

  Args:
    ds: TFDS examples with the text features, an int `label` and `idx`.
    task: the task name, for errors.
    prefix: the task word (e.g. "rte"), or None for taskless inputs.
    feature_names: the features in input order (T5: sorted, except MultiRC's
      question, answer, paragraph and WiC's sentence1, sentence2, word).
    labels: the verbalizer's words, index = class id.
    rename: TFDS feature -> name in the input (AX-b's sentence1/sentence2 are
      written as RTE's premise/hypothesis).
    strip_markup: drop MultiRC's HTML (`<br>` -> space; `<b>`, `</b>` removed).
    passthrough: raw features kept as they are (e.g. COPA's choices).

  Returns:
    Examples with `inputs`, `targets`, int32 `label`, ids and `passthrough`.

  Raises:
    tf.errors.InvalidArgumentError (when iterated): a label outside
      [-1, len(labels)), naming `task`.
  """
  def fn(x):
    x = _renamed(x, rename)
    inputs = _join(prefix, [(name, x[name]) for name in feature_names])
    if strip_markup:
      inputs = tf.strings.regex_replace(inputs, "<br>", " ")
      inputs = tf.strings.regex_replace(inputs, "</?b>", "")
    out = {"inputs": inputs, "targets": _label_text(x["label"], labels, task),
           "label": tf.cast(x["label"], tf.int32), **_ids(x)}
    out.update({k: x[k] for k in passthrough})
    return out
  return ds.map(fn, num_parallel_calls=AUTOTUNE)


def stsb(ds: tf.data.Dataset, *, prefix: Optional[str]) -> tf.data.Dataset:
  """STS-B: the target is the score rounded to the nearest 0.2, one decimal ("3.4").

  Rounding is TensorFlow's (half to even on the x5 scale), as in T5. The
  unrounded float32 score is kept in `label` for the metrics.
  """
  def fn(x):
    score = tf.cast(x["label"], tf.float32)
    return {"inputs": _join(prefix, [("sentence1", x["sentence1"]),
                                     ("sentence2", x["sentence2"])]),
            "targets": tf.strings.as_string(tf.round(score * 5.0) / 5.0, precision=1),
            "label": score, **_ids(x)}
  return ds.map(fn, num_parallel_calls=AUTOTUNE)


def record(ds: tf.data.Dataset, *, prefix: Optional[str]) -> tf.data.Dataset:
  """ReCoRD: "record query: <q> entities: <e1>, <e2> passage: <p>", one example per query.

  The target is the first gold answer ("<unk>" when there is none, as in the
  test split); `answers` keeps them all for the metric. "@highlight" markers
  of the passage become sentence breaks, as in T5. Use `split_answers` to
  train on every answer.
  """
  def fn(x):
    passage = tf.strings.regex_replace(x["passage"], "([.?!\"'])\n@highlight\n", "\\1 ")
    passage = tf.strings.regex_replace(passage, "\n@highlight\n", ". ")
    entities = tf.strings.reduce_join(x["entities"], separator=", ")
    return {"inputs": _join(prefix, [("query", x["query"]), ("entities", entities),
                                     ("passage", passage)]),
            "targets": _first_answer(x["answers"]), "answers": x["answers"], **_ids(x)}
  return ds.map(fn, num_parallel_calls=AUTOTUNE)


def question_context(ds: tf.data.Dataset) -> tf.data.Dataset:
  """SQuAD / MRQA in T5's format: "question: <q> context: <c>" -> the first gold answer.

  There is no task word (T5's SQuAD input has none), so these tasks have no
  taskless variant. The text is kept as TFDS gives it: T5's own SQuAD
  preprocessing also put spaces around punctuation, which we do not, so a
  prediction compares with the gold answers as they are written. MRQA's
  context markers ("[PAR]", "[TLE]", "[DOC]", "[SEP]") stay in the context.

  Args:
    ds: TFDS `squad` examples (`answers` = {"text": [A], "answer_start": [A]},
      `id`) or `mrqa` examples (`answers` = [A] strings, `qid`).

  Returns:
    Examples with `inputs`, `targets`, `answers` ([A] strings: every gold
    answer, for `metrics.squad`) and the string `id`.
  """
  def fn(x):
    answers = x["answers"]["text"] if isinstance(x["answers"], Mapping) else x["answers"]
    return {"inputs": _join(None, [("question", x["question"]), ("context", x["context"])]),
            "targets": _first_answer(answers), "answers": answers,
            "id": x["id"] if "id" in x else x["qid"]}
  return ds.map(fn, num_parallel_calls=AUTOTUNE)


def split_answers(ds: tf.data.Dataset) -> tf.data.Dataset:
  """ReCoRD training: one example per gold answer (target = that answer).

  Examples without answers are dropped (the training split has none).
  """
  def fn(x):
    n = tf.size(x["answers"])
    copies = {k: tf.repeat(tf.expand_dims(v, 0), n, axis=0) for k, v in x.items()
              if k not in ("targets", "answers")}
    copies["targets"] = x["answers"]
    copies["answers"] = tf.repeat(tf.expand_dims(x["answers"], 0), n, axis=0)
    return tf.data.Dataset.from_tensor_slices(copies)
  return ds.flat_map(fn)


def _mark_pronoun(text: tf.Tensor, pronoun: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
  """Puts asterisks around the pronoun: "... because *they* feared ...".

  The pronoun is the space-separated word at `index` when it matches (case
  aside, trailing punctuation kept outside the marks: `*him*,`). SuperGLUE has
  a few off-by-some indices; then the nearest matching word is marked, and
  when none matches, the word at `index` as it is.
  """
  words = tf.strings.split(text, sep=" ")
  words = tf.cond(tf.size(words) > 0, lambda: words, lambda: tf.constant([""]))
  n = tf.size(words)
  word_lengths = tf.strings.length(words)
  length = tf.minimum(tf.strings.length(pronoun), word_lengths)  # [W]: substr needs pos <= len
  heads = tf.strings.substr(words, tf.zeros_like(word_lengths), length)
  rests = tf.strings.substr(words, length, word_lengths - length)
  match = tf.logical_and(tf.strings.lower(heads) == tf.strings.lower(pronoun),
                         tf.strings.regex_full_match(rests, "[^[:alnum:]]*"))
  positions = tf.cast(tf.where(match)[:, 0], tf.int32)
  index = tf.clip_by_value(tf.cast(index, tf.int32), 0, n - 1)
  found = tf.size(positions) > 0
  at = tf.cond(found,
               lambda: tf.gather(positions, tf.argmin(tf.abs(positions - index))),
               lambda: index)
  head = tf.where(found, heads[at], words[at])
  rest = tf.where(found, rests[at], "")
  marked = tf.strings.join(["*", head, "*", rest])
  words = tf.tensor_scatter_nd_update(words, [[at]], [marked])
  return tf.strings.reduce_join(words, separator=" ")


def wsc_simple(ds: tf.data.Dataset, *, prefix: Optional[str]) -> tf.data.Dataset:
  """T5's simple WSC: "wsc: <text with *pronoun* marked>" -> the candidate referent.

  The target is `span1_text`, the candidate, whether or not it is the
  referent; `label` says whether it is (train on `keep_correct_referents`).
  """
  def fn(x):
    text = _mark_pronoun(x["text"], x["span2_text"], x["span2_index"])
    return {"inputs": tf.strings.join([prefix, text], separator=" ") if prefix else text,
            "targets": x["span1_text"], "label": tf.cast(x["label"], tf.int32), **_ids(x)}
  return ds.map(fn, num_parallel_calls=AUTOTUNE)


def keep_correct_referents(ds: tf.data.Dataset) -> tf.data.Dataset:
  """WSC training: only examples whose candidate is the referent (259 of 554)."""
  return ds.filter(lambda x: x["label"] == 1)


# ------------------------------------------------------ rank classification
def rank_classification(ds: tf.data.Dataset, *, options: Callable[[Example], tf.Tensor],
                        train: bool) -> tf.data.Dataset:
  """Expands each example over its options, one example per option.

  Every option example keeps the inputs, ids and `label`, and gets
  `targets` = the option's text, `option` (its index, int32),
  `num_options` (int32) and `is_correct` (option == label). Scoring every
  option and taking the argmax (`metrics.rank_classification`) always gives a
  legal label.

  Args:
    ds: formatted examples with an int `label`.
    options: example -> [C] option strings (the verbalizer's words, or COPA's
      two choices).
    train: keep only the correct option of each example (training on the
      target, as for the generative task).

  Returns:
    The expanded dataset.
  """
  def fn(x):
    texts = options(x)
    count = tf.size(texts)
    out = {k: tf.repeat(tf.expand_dims(v, 0), count, axis=0) for k, v in x.items()
           if k != "targets"}
    out["targets"] = texts
    out["option"] = tf.range(count, dtype=tf.int32)
    out["num_options"] = tf.fill([count], count)
    out["is_correct"] = tf.equal(out["option"], tf.cast(x["label"], tf.int32))
    return tf.data.Dataset.from_tensor_slices(out)
  ds = ds.flat_map(fn)
  return ds.filter(lambda x: x["is_correct"]) if train else ds
