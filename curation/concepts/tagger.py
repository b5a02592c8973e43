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

Linking, for each mention (its abbreviation long form when scispacy's detector found one):
1. exact look-up in the variant index (variants.py): every alias, its plurals, derived adjectives
   ("renal", "endoscopic"), hyphen spellings, and `curation/data/derived_forms.tsv`; an alias scores
   1.0, a variant `VARIANT_SCORE` (0.95);
2. else scispacy's `CandidateGenerator` (char-3-gram TF-IDF + nmslib k-NN) scores the mention as
   `EntityLinker` would (best similarity over `threshold`; no `filter_for_definitions`, which demands a
   0.95 score of the ~93% of UMLS concepts that have no definition). In n-gram mode a span is scored only
   against aliases with as many content words (stop words are not counted: "carcinoma of the breast" is
   compared with "Carcinoma of breast", but "structure" not with "Ear structure"). Only spans whose every
   content word resembles a word of some alias (3-gram Dice >= `word_dice`, 0.7) are sent there: a span with
   another word cannot reach the threshold, and skipping it is most of the tagger's speed on distinct
   captions. Identifiers mixing letters and digits ("HCC1937", "CD34") link only exactly, and a one-word
   participle ("tested") never links by similarity to a noun ("Testis").
Candidates are cut to the wanted semantic types before the best one is taken. A mention of four
characters or fewer must equal an alias (case-sensitively when the alias is an acronym) or be a variant
of a word ("nevi"), so "us", "ms" or "pets" in prose do not become concepts. The stored score is the score
that passed the threshold.

Choosing: best score, then longest, then leftmost, except that among near-exact matches (>=
`near_exact`) the longest span wins ("non-small cell lung cancer" over "small cell lung cancer": n-grams
count words, so hyphens do not push a term past `max_ngram`). A linked mention the caption uses in
another sense ("femoral head", "right-hand side", "CD34-PE", "mean CT 18.2") is dropped (senses.py).

Speed, on distinct captions (nothing here caches whole captions; every cache is per word or per mention
text, which distinct captions share):
* tokenizing: in n-gram mode the blank tokenizer alone, with no lexical attributes computed (nothing reads
  them), and the abbreviation detector only on captions with "(" and ")" (its one pattern needs both);
* the n-gram filter (`_linkable_mentions`): about one n-gram in six is kept (on ROCO captions). From
  per-token forms cached per distinct token text, a span is kept only if its normalized text is a variant
  key or it may need the similarity search, and a span stops growing once neither can hold for any longer
  span (a bisection in the sorted variant keys, and a word unlike every alias word). The rest get no link
  without being looked at, which is what `_compute_best_link` would have decided for them;
* the similarity search: all spans of a batch that need it go to the candidate generator in one call, and
  on a KB of up to `EXACT_SEARCH_MAX_ALIASES` aliases that call is one sparse product over every alias
  (exact) instead of an HNSW query per span; candidates are cached per mention text;
* links are cached per distinct mention text.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.concepts.kb import KbIdentity, LoadedKb, load_kb
from curation.concepts.semtypes import DEFAULT_SEMTYPE_GROUPS, SEMANTIC_GROUPS, resolve_semtypes
from curation.concepts.senses import Token, wrong_sense
from curation.concepts.variants import (
    EXACT_SCORE,
    build_variant_index,
    normalize,
    read_derived_table,
)
from schemas import Concept

log = logging.getLogger(__name__)

SCISPACY_MODELS = ("en_core_sci_scibert", "en_core_sci_lg", "en_core_sci_md", "en_core_sci_sm")
SHORT_MENTION_CHARS = 4
# Up to this many indexed aliases the similarity search compares a mention with every alias (one sparse
# product per batch: exact, and faster than HNSW at this size); a larger KB (all of UMLS) uses the index.
EXACT_SEARCH_MAX_ALIASES = 50_000
# Tokens a mention may contain but not start or end with.
_INNER_PUNCT = {"-", "/", "'s", "'", "’s"}


_WORD = re.compile(r"[^\W_]+(?:['’]s)?")
# A letter next to a digit: an identifier (cell line, marker, gene), never a fuzzy match of a name.
_IDENTIFIER = re.compile(r"[^\W\d_]\d|\d[^\W\d_]")
# Python's \w is str.isalnum() plus "_" (re docs), so this finds what `any(c.isalnum() ...)` finds.
_ALNUM = re.compile(r"[^\W_]")
# A character that may join two glued tokens into one word of `_WORD` (or one `_IDENTIFIER`).
_WORDISH = re.compile(r"[^\W_]|['’]")
_ANATOMY_TYPES = SEMANTIC_GROUPS["anatomy"]
# Words a name may hold that do not count towards its length ("carcinoma of the breast" has two words,
# as "Carcinoma of breast" has). Only these: spaCy's stop words include "down" (Down syndrome).
_FUNCTION_WORDS = frozenset(["of", "the", "a", "an", "in", "on", "with", "and", "for", "to", "by", "at"])


def _trigrams(word: str) -> frozenset[str]:
    padded = f" {word} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


@dataclass(frozen=True, slots=True)
class _TokenForm:
    """What the n-gram filter needs of one token text; computed once per distinct token text."""

    key: str  # the token as `normalize` writes it: lower case, ’ as '
    is_word: bool
    inner: bool  # may stand inside a mention
    bound: bool | None  # may start or end a mention; None for one character (depends on the next token)
    content: bool  # holds a content word (not a function word)
    similar: bool  # holds no identifier and every content word resembles an alias word


@dataclass(frozen=True, slots=True)
class _Tokens:
    """A tokenized caption: its text, token texts and whether a space follows each token."""

    text: str
    words: list[str]
    starts: list[int]  # character offsets
    space: list[bool]


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


def _exact_alias_vectors(linker_paths: Any, n_aliases: int) -> Any:
    """The indexed aliases' TF-IDF vectors, L2-normalized and transposed, when the KB is small enough to
    search them all (`EXACT_SEARCH_MAX_ALIASES`); else None (the nmslib index is searched)."""
    import numpy as np
    import scipy.sparse

    path = getattr(linker_paths, "tfidf_vectors", None)
    if n_aliases > EXACT_SEARCH_MAX_ALIASES or not path or not Path(path).is_file():
        return None
    vectors = scipy.sparse.load_npz(path).astype(np.float32).tocsr()
    if vectors.shape[0] != n_aliases:  # not the vectors the index was built from
        return None
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).reshape(-1))
    norms[norms == 0] = 1.0
    return scipy.sparse.csr_matrix(scipy.sparse.diags(1.0 / norms) @ vectors).T.tocsr()


def _make_caching_generator(base_cls: type, cache_size: int) -> Any:
    class CachingCandidateGenerator(base_cls):  # type: ignore[misc, valid-type]
        """scispacy's CandidateGenerator, remembering the candidates of each mention text it has seen, and
        searching a small KB's aliases exactly instead of through the HNSW index."""

        def __init__(self, *args: Any, alias_vectors: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cache: OrderedDict[tuple[str, int], list] = OrderedDict()
            self.hits = 0
            self.misses = 0
            self.alias_vectors = alias_vectors  # (3-grams x aliases), unit columns; None: use nmslib

        def nmslib_knn_with_zero_vectors(self, vectors: Any, k: int) -> tuple[Any, Any]:
            """The k nearest aliases by cosine similarity, in scispacy's return format (None for a query
            with no 3-gram). On a small KB one sparse product over every alias costs a fraction of the
            HNSW queries (about 0.1 ms each) and is exact where HNSW is approximate."""
            import numpy as np

            if self.alias_vectors is None:
                return super().nmslib_knn_with_zero_vectors(vectors, k)
            n_queries, n_aliases = vectors.shape[0], self.alias_vectors.shape[1]
            neighbors = np.empty((n_queries,), dtype=object)
            distances = np.empty((n_queries,), dtype=object)
            norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).reshape(-1))
            k = min(k, n_aliases)
            # Dense similarity rows in chunks of about four million floats.
            chunk = max(1, 4_000_000 // max(1, n_aliases))
            for lo in range(0, n_queries, chunk):
                sims = (vectors[lo : lo + chunk] @ self.alias_vectors).toarray()
                top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
                scale = norms[lo : lo + chunk].copy()
                scale[scale == 0] = 1.0
                top_sims = np.take_along_axis(sims, top, axis=1) / scale[:, None]
                order = np.argsort(-top_sims, axis=1, kind="stable")
                ids = np.take_along_axis(top, order, axis=1).tolist()
                dists = (1.0 - np.take_along_axis(top_sims, order, axis=1)).tolist()
                for row, (row_ids, row_dists) in enumerate(zip(ids, dists, strict=True)):
                    if norms[lo + row] != 0:  # no 3-gram: no candidates, as scispacy gives
                        neighbors[lo + row], distances[lo + row] = row_ids, row_dists
            return neighbors, distances

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
    derived_forms: the curated variant table (default: curation/data/derived_forms.tsv).
    word_dice: how much a content word must resemble some alias word (char-3-gram Dice) for its span to
      be scored by similarity (no-model mode); lower it with `threshold` (0.6 suits a 0.7 threshold).
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
        derived_forms: str | Path | None = None,
        word_dice: float = 0.7,
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

        self.model = installed_scispacy_model() if model == "auto" else model
        if self.model:
            self.nlp = spacy.load(self.model, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler"])
        else:
            self.nlp = spacy.blank("en")
            # Nothing here reads lexical attributes (lower_, like_num, shape_...): mentions, the
            # abbreviation detector and the sense rules use token texts only. Without the getters a new
            # word costs the tokenizer about 40% less (this vocabulary is the tagger's own).
            self.nlp.vocab.lex_attr_getters = {}
        self.nlp.add_pipe("abbreviation_detector")
        # n-gram mode runs the tokenizer alone and the abbreviation detector only on captions that have
        # a "(...)" (its one matcher pattern), which is what `nlp.pipe` would give at a fraction of the cost.
        self._abbreviation_detector = self.nlp.get_pipe("abbreviation_detector")
        from spacy.attrs import IDX, SPACY

        self._token_attrs = [IDX, SPACY]

        aliases, vectorizer, ann_index = self.loaded.linker_paths.load(ef_search=ef_search)
        generator_cls = _make_caching_generator(CandidateGenerator, cache_size)
        self.candidate_generator = generator_cls(
            ann_index,
            vectorizer,
            aliases,
            self.loaded.kb,
            alias_vectors=_exact_alias_vectors(self.loaded.linker_paths, len(aliases)),
        )
        # sklearn's first `transform` in a process scans the installed packages' entry points (tens of
        # ms): paid here, at load, rather than by the first batch.
        vectorizer.transform(["warm up"])
        self._alias_cache: dict[str, frozenset[str]] = {}
        self._link_cache: dict[tuple[str, str], _Link | None] = {}
        self._link_cache_size = cache_size
        self._link_hits = self._link_misses = 0
        self._variant_cache: dict[str, dict[str, float]] = {}
        self._stop_words = frozenset(self.nlp.Defaults.stop_words)

        entities = self.loaded.kb.cui_to_entity
        table = read_derived_table(derived_forms)
        self.variants = build_variant_index(entities, table)
        self._excluded_forms = table.excluded
        self.anatomy_words = frozenset(
            key
            for key, cuis in self.variants.items()
            if key.isalpha() and any(t in _ANATOMY_TYPES for c in cuis for t in entities[c].types)
        )
        # Words of the aliases, and an inverted 3-gram index over them, for the similarity prefilter.
        self.word_dice = word_dice
        self._alias_words = frozenset(w.lower() for a in aliases for w in _WORD.findall(a))
        self._build_word_grams()
        self._alias_like: dict[str, bool] = {}
        # Variant keys in order, so that "may some variant start with this n-gram?" is one bisection: the
        # n-gram filter stops extending a span as soon as no variant and no similarity match can follow.
        self._variant_keys = sorted(self.variants)
        self._token_forms: dict[str, _TokenForm] = {}
        self._alias_word_counts: dict[str, int] = {}

    def _build_word_grams(self) -> None:
        """A binary alias-word x 3-gram matrix for `_classify_words`."""
        import numpy as np
        import scipy.sparse

        words = sorted(self._alias_words)
        grams = [_trigrams(w) for w in words]
        self._gram_ids = {g: i for i, g in enumerate(sorted({g for gs in grams for g in gs}))}
        rows = [i for i, gs in enumerate(grams) for _ in gs]
        cols = [self._gram_ids[g] for gs in grams for g in gs]
        self._word_gram_matrix = scipy.sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(words), len(self._gram_ids))
        )
        self._alias_word_lengths = np.array([len(gs) for gs in grams], dtype=np.float32)
        # 3-grams x alias words, the right-hand side of every `_classify_words` product, built once.
        self._gram_word_matrix = self._word_gram_matrix.T.tocsr()

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
            if self.model:
                docs = list(self.nlp.pipe(clean, batch_size=self.batch_size))
            else:
                docs = [self._tokenize(t) for t in clean]
        captions = [self._tokens(doc, text) for doc, text in zip(docs, clean, strict=True)]
        if self.model:
            mentions_per_doc = [self._mentions(doc) for doc in docs]
        else:
            self._learn_token_forms(w for c in captions for w in c.words)
            mentions_per_doc = [
                self._linkable_mentions(doc, c) for doc, c in zip(docs, captions, strict=True)
            ]
        # One candidate-generator call (one sparse product, or one knnQueryBatch) for every uncached span that
        # may link by similarity in the batch.
        pending = {
            m.lookup for ms in mentions_per_doc for m in ms if (m.text, m.lookup) not in self._link_cache
        }
        self._classify_words(w for text in pending for w in _WORD.findall(text.lower()))
        pending = {text for text in pending if self._needs_similarity(text)}
        if pending:
            self.candidate_generator(sorted(pending), self.k)
        return [self._link_doc(c, ms) for c, ms in zip(captions, mentions_per_doc, strict=True)]

    def _tokenize(self, text: str) -> Any:
        """The blank pipeline's Doc: the tokenizer, then the abbreviation detector where it can match."""
        doc = self.nlp.make_doc(text)
        if "(" in text and ")" in text:
            doc = self._abbreviation_detector(doc)
        return doc

    def _tokens(self, doc: Any, text: str) -> _Tokens:
        """Token texts and trailing spaces, sliced from the caption (cheaper than a Token per token)."""
        if not len(doc):
            return _Tokens(text, [], [], [])
        starts, spaces = (list(col) for col in zip(*doc.to_array(self._token_attrs).tolist(), strict=True))
        ends = [start - space for start, space in zip(starts[1:], spaces, strict=False)]
        ends.append(len(text) - spaces[-1])
        words = [text[a:b] for a, b in zip(starts, ends, strict=True)]
        return _Tokens(text, words, starts, [bool(x) for x in spaces])

    # -- the n-gram filter ------------------------------------------------------------------------------

    def _learn_token_forms(self, words: Iterable[str]) -> None:
        """`_TokenForm`s for token texts not seen before (a word-level cache: distinct captions share words)."""
        new = [w for w in dict.fromkeys(words) if w not in self._token_forms]
        if not new:
            return
        if len(self._token_forms) + len(new) > self._link_cache_size:
            self._token_forms.clear()
        content = {w: [x for x in _WORD.findall(w.lower()) if x not in _FUNCTION_WORDS] for w in new}
        self._classify_words(x for xs in content.values() for x in xs)
        for w in new:
            is_word = _ALNUM.search(w) is not None
            bound: bool | None = None
            if len(w) > 1:
                bound = (w.isupper() and w.isalpha()) or (
                    any(c.isalpha() for c in w) and w.lower() not in self._stop_words
                )
            self._token_forms[w] = _TokenForm(
                key=w.lower().replace("’", "'"),
                is_word=is_word,
                inner=w in _INNER_PUNCT or is_word,
                bound=bound,
                content=bool(content[w]),
                similar=not _IDENTIFIER.search(w) and all(self._alias_like[x] for x in content[w]),
            )

    def _may_start_variant(self, key: str) -> bool:
        """Whether some variant key, in any hyphen spelling `_variant_hits` tries, starts with `key`."""
        keys = self._variant_keys
        for spelling in (key, key.replace("-", " "), key.replace("-", "")) if "-" in key else (key,):
            i = bisect_left(keys, spelling)
            if i < len(keys) and keys[i].startswith(spelling):
                return True
        return False

    def _linkable_mentions(self, doc: Any, caption: _Tokens) -> list[_Mention]:
        """The n-gram mentions (`_ngrams`) that may link; every other n-gram is certain to get no link.

        A span may link only if its normalized text is a variant key, or if it needs the similarity search
        (`_needs_similarity`: no identifier, and a content word, every one like an alias word). Both are
        decided here from per-token forms, and a span stops growing once no variant starts with it and
        one of its words rules similarity out. Where two tokens are glued by word characters ("patient's",
        "10mg") the per-token forms may differ from the span's, so such spans go to the exact check.
        """
        words, space, text = caption.words, caption.space, caption.text
        n = len(words)
        forms = [self._token_forms[w] for w in words]
        bound = [
            f.bound
            if f.bound is not None
            else (words[i].isupper() or (words[i].isalpha() and i + 1 < n and words[i + 1] == "-"))
            for i, f in enumerate(forms)
        ]
        long_forms: dict[tuple[int, int], str] = {}
        if "(" in text:
            long_forms = {
                (a.start, a.end): a._.long_form.text for a in doc._.abbreviations if a._.long_form is not None
            }
        last_long_end = {}
        for start, end in long_forms:
            last_long_end[start] = max(end, last_long_end.get(start, 0))
        starts = caption.starts
        out = []
        for i in range(n):
            if not bound[i]:
                continue
            key = ""
            n_words = 0
            similar, content, glued = True, False, False
            for j in range(i, n):
                form = forms[j]
                if j > i:
                    if not form.inner:
                        break
                    prev = words[j - 1]
                    if not space[j - 1]:
                        # Word characters on both sides of a glued boundary: the span's words are not
                        # the tokens' words.
                        glued = glued or (
                            _WORDISH.match(prev[-1]) is not None and _WORDISH.match(words[j][0]) is not None
                        )
                        key += form.key
                    elif prev[-1] in "-/" or words[j][0] in "-/":
                        key += form.key  # normalize drops spaces around hyphens and slashes
                    else:
                        key += " " + form.key
                else:
                    key = form.key
                n_words += form.is_word
                if n_words > self.max_ngram:
                    break
                similar = similar and form.similar
                content = content or form.content
                variant = self._may_start_variant(key)
                # No longer span from i can link: no variant starts with this one, a word of it rules the
                # similarity search out, and no abbreviation ends further on.
                if not (variant or similar or glued) and j + 1 > last_long_end.get(i, 0):
                    break
                if not bound[j]:
                    continue
                lookup = long_forms.get((i, j + 1))
                # Linked by its abbreviation's long form, or unsure (glued), or may need the similarity
                # search, or names a variant: anything else gets no link.
                may_link = lookup is not None or glued or (similar and content)
                if not may_link and not (variant and self._variant_hits_of_key(key)):
                    continue
                start_char, end_char = starts[i], starts[j] + len(words[j])
                span_text = text[start_char:end_char]
                out.append(_Mention(i, j + 1, start_char, end_char, span_text, lookup or span_text))
        return out

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
        is_word = [any(c.isalnum() for c in w) for w in words]
        inner = [w in _INNER_PUNCT or is_word[i] for i, w in enumerate(words)]
        out = []
        for i in range(n):
            if not bound[i]:
                continue
            n_words = 0
            # max_ngram counts words, not tokens: "non-small cell lung cancer" is 5 words in 6 tokens.
            for j in range(i, n):
                if j > i and not inner[j]:
                    break
                n_words += is_word[j]
                if n_words > self.max_ngram:
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
        if text.isupper() and text.isalpha():
            return True  # an acronym ("US", "IT"), not the stop word it spells
        return any(c.isalpha() for c in text) and text.lower() not in self._stop_words

    # -- linking --------------------------------------------------------------------------------------

    def _best_link(self, span_text: str, lookup_text: str) -> _Link | None:
        key = (span_text, lookup_text)
        if key in self._link_cache:
            self._link_hits += 1
        else:
            self._link_misses += 1
            if len(self._link_cache) >= self._link_cache_size:
                self._link_cache.clear()
            self._link_cache[key] = self._compute_best_link(span_text, lookup_text)
        return self._link_cache[key]

    def _variant_hits(self, text: str) -> dict[str, float]:
        hits = self._variant_cache.get(text)
        if hits is None:
            hits = self._variant_hits_of_key(normalize(text))
            if len(self._variant_cache) >= self._link_cache_size:
                self._variant_cache.clear()
            self._variant_cache[text] = hits
        return hits

    def _variant_hits_of_key(self, key: str) -> dict[str, float]:
        """`_variant_hits` of a text already normalized."""
        for spelling in (key, key.replace("-", " "), key.replace("-", "")):
            if spelling in self.variants:
                return self.variants[spelling]
        return {}

    def _needs_similarity(self, lookup_text: str) -> bool:
        """Whether a span is left to the candidate generator: no exact name, and it could reach the threshold."""
        if self._variant_hits(lookup_text) or _IDENTIFIER.search(lookup_text):
            return False
        words = _WORD.findall(lookup_text.lower())
        content = [w for w in words if w not in _FUNCTION_WORDS] if self.model is None else words
        return bool(content) and all(self._is_alias_like(w) for w in content)

    def _is_alias_like(self, word: str) -> bool:
        """Whether a word shares enough char-3-grams with some alias word to be part of a match."""
        known = self._alias_like.get(word)
        if known is None:
            self._classify_words([word])
            known = self._alias_like[word]
        return known

    def _classify_words(self, words: Iterable[str]) -> None:
        """Decide `_is_alias_like` for new words at once: 3-gram Dice with every alias word, as one sparse
        product (a loop over 3-gram posting lists costs more than the k-NN queries it saves)."""
        import numpy as np
        import scipy.sparse

        new = [w for w in dict.fromkeys(words) if w not in self._alias_like]
        for w in new:
            if w in self._alias_words:
                self._alias_like[w] = True
        new = [w for w in new if w not in self._alias_like]
        if not new:
            return
        grams = [_trigrams(w) for w in new]
        gram_ids = self._gram_ids
        ids = [[gram_ids[g] for g in gs if g in gram_ids] for gs in grams]
        indptr = np.zeros(len(new) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in ids], out=indptr[1:])
        query = scipy.sparse.csr_matrix(
            (np.ones(int(indptr[-1]), dtype=np.float32), [j for x in ids for j in x], indptr),
            shape=(len(new), len(gram_ids)),
        )
        lengths = np.array([len(gs) for gs in grams], dtype=np.float32)
        shared = (query @ self._gram_word_matrix).tocoo()
        dice = 2 * shared.data / (lengths[shared.row] + self._alias_word_lengths[shared.col])
        alike = np.zeros(len(new), dtype=bool)
        # Compared in float64, as a float32 score against the Python float always was: a Dice of exactly
        # 0.7 is 0.699999988 in float32, below 0.7.
        alike[shared.row[dice.astype(np.float64) >= self.word_dice]] = True
        for w, score in zip(new, alike.tolist(), strict=True):
            self._alias_like[w] = score

    def _compute_best_link(self, span_text: str, lookup_text: str) -> _Link | None:
        """The best candidate over the threshold with a wanted semantic type, and the score that passed."""
        short = lookup_text == span_text and len(span_text) <= SHORT_MENTION_CHARS
        hits = self._variant_hits(lookup_text)
        if hits:
            for cui, score in sorted(hits.items(), key=lambda h: (-h[1], h[0])):
                if not self._wanted(cui):
                    continue
                # A short exact match must be the alias itself, in case when an acronym ("US", not "us");
                # a variant was generated from a word ("nevi" from "nevus"), never from an acronym.
                if short and score >= EXACT_SCORE and not self._equals_alias(span_text, cui):
                    continue
                return _Link(cui, score)
            return None
        if not self._needs_similarity(lookup_text) or normalize(lookup_text) in self._excluded_forms:
            return None
        candidates = self.candidate_generator([lookup_text], self.k)[0]
        n_words = self._content_words(lookup_text)
        participle = n_words == 1 and lookup_text.lower().endswith(("ed", "ing"))
        best: _Link | None = None
        for cand in candidates:
            if self.model is None:
                # n-gram mode: every shorter and longer span is a candidate of its own, so a span is scored
                # against aliases of its own content-word count only ("structure" is not "Ear structure").
                score, alias = max(
                    (
                        (s, a)
                        for a, s in zip(cand.aliases, cand.similarities, strict=True)
                        if self._alias_content_words(a) == n_words
                    ),
                    default=(0.0, ""),
                )
                # "tested" is no variant of "testis": a participle matches only a participle.
                if participle and not alias.lower().endswith(("ed", "ing")):
                    continue
            else:
                score = max(cand.similarities)
            if score <= self.threshold or (best is not None and score <= best.score):
                continue
            if not self._wanted(cand.concept_id):
                continue
            if short and not self._equals_alias(span_text, cand.concept_id):
                continue
            best = _Link(cand.concept_id, score)
        return best

    def _alias_content_words(self, alias: str) -> int:
        """`_content_words` of an alias, remembered: every similarity candidate asks it of each alias."""
        count = self._alias_word_counts.get(alias)
        if count is None:
            count = self._alias_word_counts[alias] = self._content_words(alias)
        return count

    def _content_words(self, text: str) -> int:
        return sum(1 for w in _WORD.findall(text) if w.lower() not in _FUNCTION_WORDS)

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

    def _link_doc(self, caption: _Tokens, mentions: list[_Mention]) -> list[Concept]:
        tokens: list[Token] | None = None
        text = caption.text
        scored = []
        for m in mentions:
            link = self._best_link(m.text, m.lookup)
            if link is None:
                continue
            if tokens is None:  # built once, and only for a caption with a linked mention
                tokens = [Token(w, sp) for w, sp in zip(caption.words, caption.space, strict=True)]
            if wrong_sense(tokens, m.start, m.end, link.cui, text, self.anatomy_words):
                continue
            score, length = round(link.score, 4), m.end - m.start
            near_exact = score >= self.near_exact
            scored.append(((near_exact, length if near_exact else 0, score, length, -m.start), m, link))
        # Best score, then longest, then leftmost, except that among near-exact matches the longest wins
        # ("congenital heart defect" at 0.93 over "heart" at 1.0). n-gram mode keeps non-overlapping spans.
        scored.sort(key=lambda s: s[0], reverse=True)
        taken = [False] * len(caption.words)
        chosen: list[tuple[_Mention, _Link]] = []
        for _, m, link in scored:
            if self.model is None and any(taken[m.start : m.end]):
                continue
            taken[m.start : m.end] = [True] * (m.end - m.start)
            chosen.append((m, link))

        concepts = []
        for m, link in chosen:
            entity = self.loaded.kb.cui_to_entity[link.cui]
            concepts.append(
                Concept(
                    cui=link.cui,
                    name=entity.canonical_name,
                    semtypes=list(entity.types),
                    start=m.start_char,
                    end=m.end_char,
                    # The score that passed the threshold, not a re-scoring against other aliases.
                    score=round(float(link.score), 4),
                )
            )
        concepts.sort(key=lambda c: (c.start, c.end, c.cui))
        return concepts

    @property
    def cache_stats(self) -> dict[str, int]:
        """Hits, misses and size of the per-text link cache, and of the candidate generator's cache."""
        g = self.candidate_generator
        return {
            "hits": self._link_hits,
            "misses": self._link_misses,
            "size": len(self._link_cache),
            "generator_hits": g.hits,
            "generator_misses": g.misses,
            "generator_size": len(g.cache),
        }
