"""UMLS concept tagging of captions with scispacy's candidate generation and entity linker.

Mentions come from one of two places:

* no model (what the tests and the gold-set figures measure): a blank English tokenizer, scispacy's
  rule-based `AbbreviationDetector`, and every token n-gram up to `max_ngram` tokens that neither starts
  nor ends with a stop word, punctuation or a number and crosses no punctuation other than a hyphen,
  slash or apostrophe (noun chunks would need a parser, which a blank pipeline lacks). Each n-gram is
  linked, then mentions are chosen greedily by best score, then longest span, then leftmost, never
  overlapping a chosen one.
* an installed `en_core_sci_*` model (the default `model="auto"` picks one if any is installed): its
  NER spans are the mentions. Not exercised here (no such model is installed; none is downloaded).

Linking is scispacy's: `CandidateGenerator` (char-3-gram TF-IDF + nmslib k-NN) and `EntityLinker`
(threshold, abbreviation long forms), with `filter_for_definitions=False` (scispacy's default demands a
0.95 score of the ~93% of UMLS concepts that have no definition). Candidates are cut to the wanted
semantic types before the best one is taken. In n-gram mode a span is scored only against aliases with
as many words (every shorter and longer span is scored on its own, so "structure" does not take
"Ear structure"), and among near-exact matches (>= `near_exact`) the longest span wins. A mention of
four characters or fewer must equal an alias
of the concept (case-sensitively when the alias is an acronym), so "us", "ms" or "PE" in prose do not
become concepts by 3-gram similarity alone.

Speed: the tokenizer runs through `nlp.pipe`; all n-grams of a batch go to the candidate generator in
one call (one `knnQueryBatch`), and results are cached per distinct mention text.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.concepts.kb import KbIdentity, LoadedKb, load_kb
from curation.concepts.semtypes import DEFAULT_SEMTYPE_GROUPS, resolve_semtypes
from schemas import Concept

log = logging.getLogger(__name__)

SCISPACY_MODELS = ("en_core_sci_scibert", "en_core_sci_lg", "en_core_sci_md", "en_core_sci_sm")
ENTITY_LABEL = "ENTITY"  # spaCy drops doc.ents spans without a label
SHORT_MENTION_CHARS = 4
# Tokens a mention may contain but not start or end with.
_INNER_PUNCT = {"-", "/", "'s", "'", "’s"}


_WORD = re.compile(r"[^\W_]+(?:['’]s)?")


def _word_count(text: str) -> int:
    return len(_WORD.findall(text))


@dataclass(frozen=True)
class _Link:
    cui: str
    score: float


@dataclass(frozen=True)
class _Mention:
    start: int  # tokens
    end: int
    start_char: int
    end_char: int
    text: str
    lookup: str  # the text linked: the long form of a detected abbreviation, else the span's own text


def installed_scispacy_model() -> str | None:
    for name in SCISPACY_MODELS:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def _make_caching_generator(base_cls: type, cache_size: int) -> Any:
    class CachingCandidateGenerator(base_cls):  # type: ignore[misc, valid-type]
        """scispacy's CandidateGenerator, remembering the candidates of each mention text it has seen."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cache: OrderedDict[tuple[str, int], list] = OrderedDict()
            self.hits = 0
            self.misses = 0

        def __call__(self, mention_texts: list[str], k: int) -> list[list]:
            missing = list(dict.fromkeys(t for t in mention_texts if (t, k) not in self.cache))
            self.hits += len(mention_texts) - len(missing)
            self.misses += len(missing)
            if missing:
                for text, candidates in zip(missing, super().__call__(missing, k), strict=True):
                    self.cache[(text, k)] = candidates
                while len(self.cache) > cache_size:
                    self.cache.popitem(last=False)
            return [self.cache[(t, k)] for t in mention_texts]

    return CachingCandidateGenerator


class ConceptTagger:
    """Loads a KB, its index and a tokenizer once; tags batches of captions with UMLS concepts.

    kb_dir: a directory from `build_kb` / `default_kb_dir()`, or pass `loaded_kb` (e.g. from
      `load_scispacy_kb`) instead.
    semtypes: TUIs and/or group names (see semtypes.SEMANTIC_GROUPS) to keep; None keeps every type.
    exclude_semtypes: TUIs/groups to drop from those, e.g. ["organisms"].
    threshold: minimum cosine similarity (scispacy EntityLinker `threshold`).
    max_ngram: longest candidate mention, in tokens (no-model mode).
    near_exact: among mentions scoring at least this, the longest is chosen first (no-model mode).
    k: nearest neighbours looked up per mention.
    model: None (blank tokenizer + n-grams), "auto" (an installed en_core_sci_* model, else None) or a
      model name.
    Raises ConceptKbError("kb_missing" | "kb_incomplete" | "semtype_unknown" | "dependency_missing").
    """

    def __init__(
        self,
        kb_dir: str | Path | None = None,
        *,
        loaded_kb: LoadedKb | None = None,
        semtypes: Iterable[str] | None = DEFAULT_SEMTYPE_GROUPS,
        exclude_semtypes: Iterable[str] | None = None,
        threshold: float = 0.8,
        max_ngram: int = 5,
        near_exact: float = 0.9,
        k: int = 10,
        model: str | None = "auto",
        ef_search: int = 100,
        batch_size: int = 256,
        cache_size: int = 500_000,
    ) -> None:
        if (kb_dir is None) == (loaded_kb is None):
            raise ValueError("pass exactly one of kb_dir and loaded_kb")
        self.loaded = loaded_kb if loaded_kb is not None else load_kb(kb_dir)  # type: ignore[arg-type]
        keep = resolve_semtypes(semtypes)
        drop = resolve_semtypes(exclude_semtypes) or frozenset()
        all_types = {t for e in self.loaded.kb.cui_to_entity.values() for t in e.types}
        self.semtypes: frozenset[str] | None = (
            None if keep is None and not drop else (keep or frozenset(all_types)) - drop
        )
        self.threshold = threshold
        self.max_ngram = max_ngram
        self.near_exact = near_exact
        self.k = k
        self.batch_size = batch_size

        import spacy
        from scispacy.abbreviation import AbbreviationDetector  # noqa: F401  (registers the factory)
        from scispacy.candidate_generation import CandidateGenerator
        from scispacy.linking import EntityLinker

        self.model = installed_scispacy_model() if model == "auto" else model
        if self.model:
            self.nlp = spacy.load(self.model, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler"])
        else:
            self.nlp = spacy.blank("en")
        self.nlp.add_pipe("abbreviation_detector")

        aliases, vectorizer, ann_index = self.loaded.linker_paths.load(ef_search=ef_search)
        generator_cls = _make_caching_generator(CandidateGenerator, cache_size)
        self.candidate_generator = generator_cls(ann_index, vectorizer, aliases, self.loaded.kb)
        self.linker = EntityLinker(
            candidate_generator=self.candidate_generator,
            resolve_abbreviations=True,
            k=k,
            threshold=threshold,
            filter_for_definitions=False,
            max_entities_per_mention=k,
        )
        self._alias_cache: dict[str, frozenset[str]] = {}
        self._link_cache: dict[tuple[str, str], _Link | None] = {}
        self._link_cache_size = cache_size
        self._stop_words = self.nlp.Defaults.stop_words

    @property
    def kb_identity(self) -> dict[str, Any]:
        """{"name", "version", "concepts"} of the KB, for the corpus manifest."""
        return self.identity.as_dict()

    @property
    def identity(self) -> KbIdentity:
        return self.loaded.identity

    def tag(self, text: str) -> list[Concept]:
        return self.tag_batch([text])[0]

    def tag_batch(self, texts: Sequence[str]) -> list[list[Concept]]:
        """Concepts of each text, sorted by span. A text that is not a string, or is blank, gets []."""
        clean = [t if isinstance(t, str) else "" for t in texts]
        with warnings.catch_warnings():
            # The abbreviation detector runs an empty matcher on texts without abbreviations (spaCy W036).
            warnings.filterwarnings("ignore", message=r"\[W036\]")
            docs = list(self.nlp.pipe(clean, batch_size=self.batch_size))
        mentions_per_doc = [self._mentions(doc) for doc in docs]
        # One candidate-generator call (one nmslib knnQueryBatch) for every uncached mention of the batch.
        self.candidate_generator([m.lookup for ms in mentions_per_doc for m in ms], self.k)
        return [self._link_doc(doc, ms) for doc, ms in zip(docs, mentions_per_doc, strict=True)]

    # -- mention candidates ---------------------------------------------------------------------------

    def _mentions(self, doc: Any) -> list[_Mention]:
        """Candidate mentions, linked by the long form when the span is a detected abbreviation."""
        long_forms = {
            (a.start, a.end): a._.long_form.text for a in doc._.abbreviations if a._.long_form is not None
        }
        text = doc.text
        if self.model:
            bounds = [(e.start, e.end, e.start_char, e.end_char) for e in doc.ents]
        else:
            bounds = self._ngrams(doc)
        out = []
        for start, end, start_char, end_char in bounds:
            span_text = text[start_char:end_char]
            out.append(
                _Mention(start, end, start_char, end_char, span_text, long_forms.get((start, end), span_text))
            )
        return out

    def _ngrams(self, doc: Any) -> list[tuple[int, int, int, int]]:
        """(start token, end token, start char, end char) of every n-gram that may be a mention."""
        tokens = [(t.text, t.idx) for t in doc]
        words = [w for w, _ in tokens]
        starts = [i for _, i in tokens]
        n = len(words)
        bound = [self._can_bound(words, i) for i in range(n)]
        inner = [w in _INNER_PUNCT or any(c.isalnum() for c in w) for w in words]
        out = []
        for i in range(n):
            if not bound[i]:
                continue
            for j in range(i, min(n, i + self.max_ngram)):
                if j > i and not inner[j]:
                    break
                if bound[j]:
                    out.append((i, j + 1, starts[i], starts[j] + len(words[j])))
        return out

    def _can_bound(self, words: list[str], i: int) -> bool:
        """Whether token i may start or end a mention: not a stop word, punctuation or number."""
        text = words[i]
        if len(text) == 1:
            # A lone letter bounds a mention only as in "T cells" or "x-ray".
            return text.isupper() or (text.isalpha() and i + 1 < len(words) and words[i + 1] == "-")
        return any(c.isalpha() for c in text) and text.lower() not in self._stop_words

    # -- linking --------------------------------------------------------------------------------------

    def _best_link(self, span_text: str, lookup_text: str) -> _Link | None:
        key = (span_text, lookup_text)
        if key not in self._link_cache:
            if len(self._link_cache) >= self._link_cache_size:
                self._link_cache.clear()
            self._link_cache[key] = self._compute_best_link(span_text, lookup_text)
        return self._link_cache[key]

    def _compute_best_link(self, span_text: str, lookup_text: str) -> _Link | None:
        """The best candidate over the threshold with a wanted semantic type, as EntityLinker scores it."""
        candidates = self.candidate_generator([lookup_text], self.k)[0]
        n_words = _word_count(lookup_text)
        best: _Link | None = None
        for cand in candidates:
            if self.model is None:
                # n-gram mode: every shorter and longer span is a candidate of its own, so a span is scored
                # against aliases of its own word count only ("structure" is not "Ear structure").
                score = max(
                    (
                        s
                        for a, s in zip(cand.aliases, cand.similarities, strict=True)
                        if _word_count(a) == n_words
                    ),
                    default=0.0,
                )
            else:
                score = max(cand.similarities)
            if score <= self.threshold or (best is not None and score <= best.score):
                continue
            if not self._wanted(cand.concept_id):
                continue
            short = lookup_text == span_text and len(span_text) <= SHORT_MENTION_CHARS
            if short and not self._equals_alias(span_text, cand.concept_id):
                continue
            best = _Link(cand.concept_id, score)
        return best

    def _wanted(self, cui: str) -> bool:
        if self.semtypes is None:
            return True
        return any(t in self.semtypes for t in self.loaded.kb.cui_to_entity[cui].types)

    def _equals_alias(self, text: str, cui: str) -> bool:
        aliases = self._alias_cache.get(cui)
        if aliases is None:
            entity = self.loaded.kb.cui_to_entity[cui]
            aliases = frozenset(
                a for a in (entity.canonical_name, *entity.aliases) if len(a) <= SHORT_MENTION_CHARS
            )
            self._alias_cache[cui] = aliases
        for alias in aliases:
            # An acronym ("CT", "US") must match in case; an ordinary short word ("Hip") need not.
            if alias == text or (not alias.isupper() and alias.lower() == text.lower()):
                return True
        return False

    def _link_doc(self, doc: Any, mentions: list[_Mention]) -> list[Concept]:
        from spacy.tokens import Span

        scored = []
        for m in mentions:
            link = self._best_link(m.text, m.lookup)
            if link is not None:
                score, length = round(link.score, 4), m.end - m.start
                near_exact = score >= self.near_exact
                scored.append(((near_exact, length if near_exact else 0, score, length, -m.start), m, link))
        # Best score, then longest, then leftmost, except that among near-exact matches the longest wins
        # ("congenital heart defect" at 0.93 over "heart" at 1.0). n-gram mode keeps non-overlapping spans.
        scored.sort(key=lambda s: s[0], reverse=True)
        taken = [False] * len(doc)
        chosen: list[tuple[_Mention, _Link]] = []
        for _, m, link in scored:
            if self.model is None and any(taken[m.start : m.end]):
                continue
            taken[m.start : m.end] = [True] * (m.end - m.start)
            chosen.append((m, link))
        chosen.sort(key=lambda c: c[0].start)

        # scispacy's EntityLinker links the chosen mentions (cache hits only), long forms resolved.
        doc.ents = [Span(doc, m.start, m.end, label=ENTITY_LABEL) for m, _ in chosen]
        self.linker(doc)
        concepts = []
        for ent, (m, link) in zip(doc.ents, chosen, strict=True):
            score = dict(ent._.kb_ents).get(link.cui, link.score)
            entity = self.loaded.kb.cui_to_entity[link.cui]
            concepts.append(
                Concept(
                    cui=link.cui,
                    name=entity.canonical_name,
                    semtypes=list(entity.types),
                    start=m.start_char,
                    end=m.end_char,
                    score=round(float(score), 4),
                )
            )
        concepts.sort(key=lambda c: (c.start, c.end, c.cui))
        return concepts

    @property
    def cache_stats(self) -> dict[str, int]:
        g = self.candidate_generator
        return {"hits": g.hits, "misses": g.misses, "size": len(g.cache)}
