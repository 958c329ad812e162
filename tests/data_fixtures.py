"""Offline data for the data tests: hand-written TFDS examples and a tiny vocabulary.

`serve(examples)` makes TFDS return our own examples (in TFDS's feature
format: super_glue 1.0.2, glue 2.0.0) for `(dataset/config, split)` through
`tfds.testing.mock_data`, so registered tasks run end to end without a
download. `EXAMPLES` holds one hand-written example per task table row, with
the exact T5 input and target it must give (SQuAD and MRQA: `QA`, in TFDS
squad 3.0.0's and mrqa 1.0.0's features).
"""
import contextlib
import os

import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from prompt_tuning.data import mrqa, tasks, verbalizers
from prompt_tuning.data import vocab as vocab_lib

# Text a test SentencePiece model is trained on (our own sentences).
SPM_TEXT = [
    "The sky looks blue on clear days.", "is the sky blue", "Anna said the train was late.",
    "The train was late.", "The glass fell off the table.", "It shattered.", "It grew.",
    "Tom has a red bike. He rides it every day.", "What color is the bike?",
    "entailment contradiction neutral not_entailment True False yes no maybe",
    "question passage premise hypothesis sentence1 sentence2 word choice1 choice2",
] * 4


@contextlib.contextmanager
def serve(examples: dict):
  """TFDS yields `examples[("super_glue/cb", "validation")]` (a list of dicts), offline."""
  def as_dataset(builder, split, decoders=None, read_config=None, **kwargs):
    del decoders, read_config, kwargs
    key = (f"{builder.name}/{builder.builder_config.name}", str(split))
    if key not in examples:
      raise KeyError(f"no hand-written examples for {key}; have {sorted(examples)}")
    spec = builder.info.features.get_tensor_spec()
    rows = examples[key]
    return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=spec)
  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    yield


# Test pipelines read a handful of examples: skip tf.data's graph rewrites.
FAST = tf.data.Options()
FAST.experimental_optimization.apply_default_optimizations = False
FAST.autotune.enabled = False


def register_bytes() -> None:
  """Registers every task with a byte vocabulary and TFDS label words."""
  verbalizers.reset_label_words()
  tasks.register_tasks(seqio.ByteVocabulary())


def train_spm(directory: str) -> str:
  return vocab_lib.train_sentencepiece(SPM_TEXT, os.path.join(directory, "spiece"), 96)


def first(task_name: str, split: str = "validation", n: int = 1) -> list[dict]:
  """The first n preprocessed examples of a registered task (numpy)."""
  ds = seqio.get_mixture_or_task(task_name).get_dataset(
      None, split=split, shuffle=False, num_epochs=1)
  return list(ds.with_options(FAST).take(n).as_numpy_iterator())


def text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


# ---------------------------------------------------------------- examples
# table row -> (TFDS dataset/config, raw example, T5 input, target)
_SG_CB = {"premise": "Anna said the train was late.", "hypothesis": "The train was late.",
          "label": 0, "idx": 4}
_MRPC = {"sentence1": "The firm sold the plant in May.",
         "sentence2": "In May, the company sold its plant.", "label": 1, "idx": 2}
_QQP = {"question1": "How do I learn to swim?", "question2": "Is swimming hard to learn?",
        "label": 0, "idx": 8}
_MNLI = {"premise": "The shop opens at nine.", "hypothesis": "The shop is closed all day.",
         "label": 2, "idx": 5}
_MNLI_IN = "mnli hypothesis: The shop is closed all day. premise: The shop opens at nine."

EXAMPLES = {
    "super_glue_boolq_v102": (
        "super_glue/boolq", {"question": "is the sky blue",
                             "passage": "The sky looks blue on clear days.",
                             "label": 1, "idx": 0},
        "boolq passage: The sky looks blue on clear days. question: is the sky blue", "True"),
    "super_glue_cb_v102": (
        "super_glue/cb", _SG_CB,
        "cb hypothesis: The train was late. premise: Anna said the train was late.",
        "entailment"),
    "super_glue_copa_v102": (
        "super_glue/copa", {"premise": "The glass fell off the table.", "choice1": "It shattered.",
                            "choice2": "It grew.", "question": "effect", "label": 0, "idx": 1},
        "copa choice1: It shattered. choice2: It grew. premise: The glass fell off the table. "
        "question: effect", "choice1"),
    "super_glue_multirc_v102": (
        "super_glue/multirc", {"paragraph": "Tom has a red bike.<br>He rides it <b>every</b> day.",
                               "question": "What color is the bike?", "answer": "red",
                               "label": 1, "idx": {"paragraph": 3, "question": 1, "answer": 0}},
        "multirc question: What color is the bike? answer: red paragraph: Tom has a red bike. "
        "He rides it every day.", "True"),
    "super_glue_record_v102": (
        "super_glue/record", {
            "passage": "Kim met Lee in Paris.\n@highlight\nKim is a chef\n@highlight\nLee paints",
            "query": "@placeholder is a chef.", "entities": ["Kim", "Kim Park", "Lee", "Paris"],
            "answers": ["Kim", "Kim Park"], "idx": {"passage": 7, "query": 2}},
        "record query: @placeholder is a chef. entities: Kim, Kim Park, Lee, Paris passage: "
        "Kim met Lee in Paris. Kim is a chef. Lee paints", "Kim"),
    "super_glue_rte_v102": (
        "super_glue/rte", {"premise": "Rain fell all night.", "hypothesis": "The ground is dry.",
                           "label": 1, "idx": 3},
        "rte hypothesis: The ground is dry. premise: Rain fell all night.", "not_entailment"),
    "super_glue_wic_v102": (
        "super_glue/wic", {"word": "bank", "sentence1": "She sat on the bank.",
                           "sentence2": "He robbed the bank.", "start1": 15, "end1": 19,
                           "start2": 14, "end2": 18, "label": 0, "idx": 6},
        "wic sentence1: She sat on the bank. sentence2: He robbed the bank. word: bank", "False"),
    "super_glue_wsc_v102": (
        "super_glue/wsc.fixed", {"text": "The cat chased the mouse because it was hungry.",
                                 "span1_text": "The cat", "span1_index": 0, "span2_text": "it",
                                 "span2_index": 6, "label": 1, "idx": 9},
        "wsc: The cat chased the mouse because *it* was hungry.", "The cat"),
    "super_glue_axb_v102": (
        "super_glue/axb", {"sentence1": "All dogs bark.", "sentence2": "Some dogs bark.",
                           "label": 0, "idx": 0},
        "rte hypothesis: Some dogs bark. premise: All dogs bark.", "entailment"),
    "super_glue_axg_v102": (
        "super_glue/axg", {"premise": "The nurse thanked the doctor because she was kind.",
                           "hypothesis": "The doctor was kind.", "label": 1, "idx": 0},
        "rte hypothesis: The doctor was kind. premise: The nurse thanked the doctor because she "
        "was kind.", "not_entailment"),
    "glue_cola_v200": ("glue/cola", {"sentence": "The book was read by her.", "label": 1,
                                     "idx": 0},
                       "cola sentence: The book was read by her.", "acceptable"),
    "glue_sst2_v200": ("glue/sst2", {"sentence": "a warm and funny film", "label": 1, "idx": 1},
                       "sst2 sentence: a warm and funny film", "positive"),
    "glue_mrpc_v200": ("glue/mrpc", _MRPC,
                       "mrpc sentence1: The firm sold the plant in May. sentence2: In May, the "
                       "company sold its plant.", "equivalent"),
    "glue_qqp_v200": ("glue/qqp", _QQP,
                      "qqp question1: How do I learn to swim? question2: Is swimming hard to "
                      "learn?", "not_duplicate"),
    "glue_stsb_v200": ("glue/stsb", {"sentence1": "A man plays a guitar.",
                                     "sentence2": "A person plays music.", "label": 3.38,
                                     "idx": 4},
                       "stsb sentence1: A man plays a guitar. sentence2: A person plays music.",
                       "3.4"),
    "glue_mnli_v200": ("glue/mnli", _MNLI, _MNLI_IN, "contradiction"),
    "glue_mnli_matched_v200": ("glue/mnli_matched", _MNLI, _MNLI_IN, "contradiction"),
    "glue_mnli_mismatched_v200": ("glue/mnli_mismatched", _MNLI, _MNLI_IN, "contradiction"),
    "glue_qnli_v200": ("glue/qnli", {"question": "Where do owls sleep?",
                                     "sentence": "Owls sleep in trees by day.", "label": 0,
                                     "idx": 2},
                       "qnli question: Where do owls sleep? sentence: Owls sleep in trees by day.",
                       "entailment"),
    "glue_rte_v200": ("glue/rte", {"sentence1": "Rain fell all night.",
                                   "sentence2": "The ground is dry.", "label": 1, "idx": 3},
                      "rte sentence1: Rain fell all night. sentence2: The ground is dry.",
                      "not_entailment"),
    "glue_wnli_v200": ("glue/wnli", {"sentence1": "The ball hit the cup and it broke.",
                                     "sentence2": "The cup broke.", "label": 1, "idx": 0},
                       "wnli sentence1: The ball hit the cup and it broke. sentence2: The cup "
                       "broke.", "entailment"),
    "glue_ax_v200": ("glue/ax", {"premise": "No cats fly.", "hypothesis": "Some cats fly.",
                                 "label": -1, "idx": 0},
                     "mnli hypothesis: Some cats fly. premise: No cats fly.", "<unk>"),
    "glue_mrpc_from_qqp_v200": ("glue/mrpc", _MRPC,
                                "mrpc sentence1: The firm sold the plant in May. sentence2: In "
                                "May, the company sold its plant.", "duplicate"),
    "glue_qqp_from_mrpc_v200": ("glue/qqp", _QQP,
                                "qqp question1: How do I learn to swim? question2: Is swimming "
                                "hard to learn?", "not_equivalent"),
}


# ------------------------------------------------------------ SQuAD, MRQA
def mrqa_raw(qid: str, question: str, context: str, answers: list) -> dict:
  """An example in TFDS mrqa 1.0.0's features; the token and span features left empty."""
  empty = tf.ragged.constant([], dtype=tf.int32, ragged_rank=1)
  return {"qid": qid, "question": question, "context": context, "answers": answers,
          "subset": "", "context_tokens": {"tokens": [], "offsets": []},
          "question_tokens": {"tokens": [], "offsets": []},
          "detected_answers": {"text": [], "char_spans": {"start": empty, "end": empty},
                               "token_spans": {"start": empty, "end": empty}}}


# MRQA config -> (question, context, gold answers); our own sentences.
QA = {
    "squad": ("Who built the bridge?", "The bridge was built by Ada in 1901.", ["Ada", "by Ada"]),
    "news_qa": ("Where did the storm hit?", "The storm hit Leeds on Monday.", ["Leeds"]),
    "trivia_qa": ("Which planet is red?", "Mars is called the red planet.", ["Mars"]),
    "search_qa": ("What do bees make?", "Bees make honey and wax.", ["honey"]),
    "hotpot_qa": ("Whose dog is Rex?", "Rex is the dog of Sam. Sam lives in Oslo.", ["Sam"]),
    "natural_questions": ("when was the tower opened", "The tower opened in 1889.", ["1889"]),
    "textbook_qa": ("What do plants need?", "Plants need light and water.",
                    ["light and water", "light"]),
    "bio_asq": ("Which gene is linked to the disease?", "The disease is linked to the gene X1.",
                ["X1"]),
    "race": ("Why was Tom late?", "Tom was late because of the rain.", ["the rain", "rain"]),
    "relation_extraction": ("Where was Ann born?", "Ann was born in Porto.", ["Porto"]),
    "duo_rc": ("Who saves the king?", "In the film, a young guard saves the king.",
               ["a young guard"]),
    "drop": ("How many goals were scored?", "Lima scored two goals and Cruz one.", ["3", "three"]),
}


def _qa_examples() -> dict:
  out = {"squad_v11_v300": (
      "squad/v1.1", {"id": "s0", "title": "Bridges", "question": QA["squad"][0],
                     "context": QA["squad"][1],
                     "answers": {"text": QA["squad"][2], "answer_start": [24, 21]}},
      f"question: {QA['squad'][0]} context: {QA['squad'][1]}", QA["squad"][2][0])}
  for domain in mrqa.DOMAINS:
    question, context, answers = QA[domain.config]
    out[domain.task] = (f"mrqa/{domain.config}",
                        mrqa_raw(f"{domain.config}-0", question, context, answers),
                        f"question: {question} context: {context}", answers[0])
  return out


EXAMPLES.update(_qa_examples())


def eval_split(spec) -> str:
  """The split a task is evaluated on: validation, else its only split."""
  return "validation" if "validation" in spec.splits else next(iter(spec.splits))


def served_examples() -> dict:
  """Every EXAMPLES row under each TFDS split its task reads."""
  out = {}
  for spec in tasks.TASKS:
    dataset, raw, _, _ = EXAMPLES[spec.name]
    for tfds_split in spec.splits.values():
      out[(dataset, tfds_split)] = [raw]
  return out
