"""The MRQA 2019 domains (TFDS `mrqa` 1.0.0): names, tasks and the paper's domain-shift split.

The paper's section 5 (Table 1) tunes a prompt on SQuAD and evaluates it,
zero-shot, on MRQA's out-of-domain sets. MRQA has six in-domain sets with
train and validation splits and six out-of-domain sets with one split, which
TFDS calls "test" (they are MRQA's released out-of-domain dev sets, the ones
the paper reports). One TFDS config is one domain; its seqio task is
`mrqa_<config>_v100` (see `prompt_tuning.data.tasks`).
"""
import dataclasses
import difflib
from typing import Sequence

VERSION = "1.0.0"


@dataclasses.dataclass(frozen=True)
class Domain:
  """One MRQA set.

  Attributes:
    config: the TFDS config name ("textbook_qa").
    title: its name in MRQA and the paper ("TextbookQA").
    in_domain: one of MRQA's training sets (train + validation splits);
      otherwise out-of-domain (a "test" split only).
    num_train_examples: training examples (MRQA 2019; 0 out of domain).
  """
  config: str
  title: str
  in_domain: bool
  num_train_examples: int = 0

  @property
  def task(self) -> str:
    """The seqio task name, e.g. "mrqa_textbook_qa_v100"."""
    return f"mrqa_{self.config}_v{VERSION.replace('.', '')}"

  @property
  def tfds_name(self) -> str:
    return f"mrqa/{self.config}:{VERSION}"

  @property
  def split(self) -> str:
    """The split a domain is evaluated on: "validation" in domain, "test" out of it."""
    return "validation" if self.in_domain else "test"


DOMAINS: tuple[Domain, ...] = (
    Domain("squad", "SQuAD", True, 86_588),
    Domain("news_qa", "NewsQA", True, 74_160),
    Domain("trivia_qa", "TriviaQA", True, 61_688),
    Domain("search_qa", "SearchQA", True, 117_384),
    Domain("hotpot_qa", "HotpotQA", True, 72_928),
    Domain("natural_questions", "NaturalQuestions", True, 104_071),
    # Out of domain, in the order of the paper's Table 1.
    Domain("textbook_qa", "TextbookQA", False),
    Domain("bio_asq", "BioASQ", False),
    Domain("race", "RACE", False),
    Domain("relation_extraction", "RelationExtraction", False),
    Domain("duo_rc", "DuoRC", False),
    Domain("drop", "DROP", False),
)
OUT_OF_DOMAIN: tuple[str, ...] = tuple(d.config for d in DOMAINS if not d.in_domain)
_BY_NAME = {key: d for d in DOMAINS for key in (d.config, d.title.lower())}


def get_domain(name: str) -> Domain:
  """A domain by TFDS config name ("bio_asq") or title ("BioASQ", any case).

  Raises:
    ValueError: no such domain; names the closest ones and every domain.
  """
  domain = _BY_NAME.get(str(name).lower())
  if domain is not None:
    return domain
  key = str(name).lower().replace("-", "_").replace(" ", "_")
  close = difflib.get_close_matches(key, sorted(_BY_NAME), n=6, cutoff=0.5)
  configs = list(dict.fromkeys(_BY_NAME[c].config for c in close))[:3]
  hint = f" did you mean {', '.join(map(repr, configs))}?" if configs else ""
  raise ValueError(f"unknown MRQA domain {name!r};{hint} expected one of "
                   f"{[d.config for d in DOMAINS]} (TFDS mrqa {VERSION} configs).")


def get_domains(names: Sequence[str]) -> list[Domain]:
  """`get_domain` of each name, in order; a single string is refused (a likely mistake)."""
  if isinstance(names, str):
    raise ValueError(f"domains={names!r}; expected a list of MRQA domain names, e.g. "
                     f"{list(OUT_OF_DOMAIN[:2])}.")
  domains = [get_domain(n) for n in names]
  seen = [d.config for d in domains]
  twice = sorted({c for c in seen if seen.count(c) > 1})
  if twice:
    raise ValueError(f"domains {list(names)} name {twice} more than once; expected each "
                     "domain once.")
  return domains
