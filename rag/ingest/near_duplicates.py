"""Wire copies and near-duplicates: the same story published twice, found by MinHash.

    sign(text) → Signature                       (per document; store `to_bytes()`, reuse it)
    group_copies({doc_id: Signature}, dates, texts=None) → [CopyGroup(canonical, copies)]
    (where a passage of one copy stands in another: `rag.ingest.alignment`)

Invariants:
- Pure and deterministic: no I/O, no state, no randomness at run time. Words are hashed with
  blake2b (never Python's salted `hash`) and every constant comes from blake2b of a fixed
  label, so the same text gives the same signature in every process, on every machine.
- A document's shingles are the `SHINGLE_WORDS`-word runs of its words (letter/digit runs of
  the NFKC, case-folded text: quotes, apostrophes, dashes and whitespace never matter) after its
  opening boilerplate (`body_start`: front matter, a headline line, a byline, a "(MENAFN- …)"
  prefix, a dateline up to its dash), so a republished copy under another header matches.
  A text shorter than `SHINGLE_WORDS` words is one shingle; a text without words has none and
  is never anyone's copy.
- A `Signature` is `NUM_PERM` 64-bit minima of universal hashes (a·x + b mod 2⁶⁴, then the
  bijective murmur3 finaliser) plus the shingle count and text length; `to_bytes`/`from_bytes`
  round-trip it exactly, and `from_bytes` refuses bytes made with other parameters
  (`SIGNATURE_FORMAT` names them, for an index manifest: `rag.ingest.copy_record`).
- Two documents are copies when the containment of the smaller shingle set in the larger is
  at least `Thresholds.containment` (a trimmed republication is contained in its original)
  and the smaller has `Thresholds.min_shingles` shingles, or when their Jaccard similarity
  alone is at least `Thresholds.jaccard` (near-identical short texts). Both are estimated
  from the signatures (Jaccard ± ~.04 at 128 permutations, containment from it and the two
  sizes), or measured exactly on the candidates' shingle sets when `group_copies` is given
  their texts — the precise choice: different BBC stories reach .78 containment, rewritten
  versions of one story .85. A text under about a fifth of the other's length is not reliably
  found: such a pair is seldom an LSH candidate, and its estimated containment is noisy.
- Candidates come from LSH banding (`Thresholds.bands` bands of the signature); every pair in
  a returned group is verified, not only the candidates: each document of a group is a copy
  of every other one (complete linkage), so a text quoted by two different stories never
  folds those stories together.
- A group's canonical document is its first by (earliest full date, longest text, smallest
  doc_id); documents without a full date come after dated ones. Groups are sorted by canonical
  id, copies in that same order; only groups with copies are returned.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from rag.ingest.article_dates import full_date
from rag.ingest.copy_record import (
    BANDS,
    NUM_PERM,
    SHINGLE_WORDS,
    SIGNATURE_FORMAT,
    THRESHOLDS,
    CopyGroup,
    Thresholds,
)

HEADER_SCAN_CHARS = 300

_MAGIC = b"NDMH"
_HEADER = struct.Struct("<4sHHII")  # magic, shingle words, permutations, shingles, text chars
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_WORD = re.compile(r"[^\W_]+")

_UPPER = "A-ZÀ-ÖØ-Þ"
_DASH = r"\s*(?:--|-|–|—)\s+"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_BYLINE = re.compile(r"(?:BY|By)\s+[^\n]{1,80}(?:\n|\Z)")
_MENAFN = re.compile(r"\(MENAFN-\s*(?:[^()\n]|\([^()\n]*\))+\)\s*")
_DATELINE = re.compile(
    rf"[{_UPPER}][{_UPPER}'. -]*[{_UPPER}.](?:,[^()\n]{{1,40}}?)?(?:\s*\([^()\n]{{1,40}}\))?{_DASH}"
    rf"|[^()\n]{{1,60}}?\([^()\n]{{1,40}}\){_DASH}"
)


def _constants(label: str) -> np.ndarray:
    """NUM_PERM fixed 64-bit constants derived from `label` (blake2b in counter mode)."""
    raw = b"".join(
        hashlib.blake2b(f"{label}/{i}".encode(), digest_size=8).digest() for i in range(NUM_PERM)
    )
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


_A = _constants("near-duplicates/a") | np.uint64(1)  # odd multipliers: a bijection mod 2⁶⁴
_B = _constants("near-duplicates/b")
_M = _constants("near-duplicates/position")[:SHINGLE_WORDS] | np.uint64(1)


# ---------------------------------------------------------------------------- shingles


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a text: `text[start:end]`, and its normalised form."""

    start: int
    end: int
    norm: str


def words(text: str, start: int = 0) -> list[Word]:
    """The letter/digit runs of `text` from `start`, with offsets into `text`."""
    return [Word(m.start(), m.end(), _norm(m.group())) for m in _WORD.finditer(text, start)]


def _norm(word: str) -> str:
    return unicodedata.normalize("NFKC", word).casefold()


def body_start(text: str) -> int:
    """Where the story proper starts: after front matter, a headline line (≤ 150 characters,
    no final period, a blank line after it), a byline, a "(MENAFN- …)" prefix and a dateline
    ("CAIRO, Feb 9 (KUNA) --", "LONDON, 3 March 2024 -"). 0 when there is none."""
    pos = m.end() if (m := _FRONT_MATTER.match(text)) else 0
    pos = _skip_space(text, pos)
    first, newline, rest = text[pos:].partition("\n")
    stripped = first.strip()
    if (
        newline and rest.lstrip(" \t").startswith("\n") and len(stripped) <= 150
        and stripped and not stripped.endswith(".")
    ):  # fmt: skip
        pos = _skip_space(text, pos + len(first) + 1)
    if (m := _BYLINE.match(text, pos)) and not m.group().rstrip().endswith("."):
        pos = _skip_space(text, m.end())
    if m := _MENAFN.match(text, pos):
        pos = m.end()
    head = text[: pos + HEADER_SCAN_CHARS]
    if m := _DATELINE.match(head, pos):
        pos = m.end()
    return pos


def _skip_space(text: str, pos: int) -> int:
    return len(text) - len(text[pos:].lstrip())


def tokens(text: str) -> list[str]:
    """The shingled words: letter/digit runs of the NFKC, case-folded body (`body_start`)."""
    return _WORD.findall(_norm(text[body_start(text) :]))


def shingle_hashes(text: str) -> np.ndarray:
    """The distinct 64-bit hashes of the body's `SHINGLE_WORDS`-word shingles, sorted: each
    word's blake2b, combined by position (Σ wordₖ·Mₖ mod 2⁶⁴) and mixed by `_fmix64`."""
    seen: dict[str, int] = {}
    ids = [seen.setdefault(t, len(seen)) for t in tokens(text)]
    if not ids:
        return np.empty(0, dtype=np.uint64)
    digests = b"".join(hashlib.blake2b(w.encode(), digest_size=8).digest() for w in seen)
    hashed = np.frombuffer(digests, dtype="<u8").astype(np.uint64)[np.array(ids)]
    n = max(1, len(ids) - SHINGLE_WORDS + 1)
    acc = np.zeros(n, dtype=np.uint64)
    for k in range(min(SHINGLE_WORDS, len(ids))):
        acc += hashed[k : k + n] * _M[k]  # wraps mod 2⁶⁴
    return np.unique(_fmix64(acc))


# ---------------------------------------------------------------------------- signatures


@dataclass(frozen=True, slots=True)
class Signature:
    """A document's MinHash: NUM_PERM little-endian uint64 minima, shingle count, text length."""

    hashes: bytes
    n_shingles: int
    n_chars: int

    @property
    def array(self) -> np.ndarray:
        return np.frombuffer(self.hashes, dtype="<u8")

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, SHINGLE_WORDS, NUM_PERM, self.n_shingles, self.n_chars)
        return header + self.hashes

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        """The signature `to_bytes` wrote; ValueError for bytes of another format."""
        if len(data) != _HEADER.size + 8 * NUM_PERM:
            raise ValueError(f"not a {SIGNATURE_FORMAT} signature ({len(data)} bytes)")
        magic, k, n_perm, n_shingles, n_chars = _HEADER.unpack_from(data)
        if (magic, k, n_perm) != (_MAGIC, SHINGLE_WORDS, NUM_PERM):
            raise ValueError(f"not a {SIGNATURE_FORMAT} signature ({magic!r}, w{k}, p{n_perm})")
        return cls(bytes(data[_HEADER.size :]), n_shingles, n_chars)


def sign(text: str) -> Signature:
    """The MinHash signature of `text` (see the module docstring)."""
    shingles = shingle_hashes(text)
    minima = np.full(NUM_PERM, _EMPTY, dtype=np.uint64)  # no shingles: never anyone's copy
    for block in range(0, shingles.size, 4096):  # bounded memory for very long texts
        x = _A[:, None] * shingles[None, block : block + 4096] + _B[:, None]
        np.minimum(minima, _fmix64(x).min(axis=1), out=minima)
    return Signature(minima.astype("<u8").tobytes(), int(shingles.size), len(text))


def _fmix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, a bijection that spreads every input bit (wraps mod 2⁶⁴)."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


# ---------------------------------------------------------------------------- comparing


@dataclass(frozen=True, slots=True)
class Similarity:
    """Jaccard similarity, and containment of the smaller shingle set in the larger."""

    jaccard: float
    containment: float


def similarity(a: Signature, b: Signature) -> Similarity:
    """Estimates from the share of equal minima; 0 when either document has no shingles."""
    if a.n_shingles == 0 or b.n_shingles == 0:
        return Similarity(0.0, 0.0)
    j = float(np.count_nonzero(a.array == b.array)) / NUM_PERM
    shared = j * (a.n_shingles + b.n_shingles) / (1.0 + j)
    return Similarity(j, min(1.0, shared / min(a.n_shingles, b.n_shingles)))


def shingle_similarity(a: np.ndarray, b: np.ndarray) -> Similarity:
    """The exact measures of two `shingle_hashes` sets; 0 when either is empty."""
    if a.size == 0 or b.size == 0:
        return Similarity(0.0, 0.0)
    shared = np.intersect1d(a, b, assume_unique=True).size
    return Similarity(shared / (a.size + b.size - shared), shared / min(a.size, b.size))


def is_copy(a: Signature, b: Signature, thresholds: Thresholds = THRESHOLDS) -> bool:
    """Whether one of the two documents is a copy (maybe trimmed) of the other (estimated)."""
    return _decide(similarity(a, b), min(a.n_shingles, b.n_shingles), thresholds)


def _decide(sim: Similarity, smaller: int, thresholds: Thresholds) -> bool:
    if sim.jaccard >= thresholds.jaccard:
        return True
    return smaller >= thresholds.min_shingles and sim.containment >= thresholds.containment


def candidate_pairs(
    signatures: Mapping[str, Signature], bands: int = BANDS
) -> list[tuple[str, str]]:
    """Pairs (a < b) that share at least one band of their signatures, sorted."""
    width = 8 * NUM_PERM // bands  # bytes per band
    buckets: dict[tuple[int, bytes], list[str]] = {}
    for doc_id in sorted(signatures):
        sig = signatures[doc_id]
        if sig.n_shingles == 0:
            continue
        for band in range(bands):
            key = (band, sig.hashes[band * width : (band + 1) * width])
            buckets.setdefault(key, []).append(doc_id)
    pairs = {p for ids in buckets.values() if len(ids) > 1 for p in combinations(ids, 2)}
    return sorted(pairs)


# ---------------------------------------------------------------------------- grouping


def group_copies(
    signatures: Mapping[str, Signature],
    dates: Mapping[str, str | None] | None = None,
    thresholds: Thresholds = THRESHOLDS,
    texts: Mapping[str, str] | None = None,
) -> list[CopyGroup]:
    """The groups of copies among `signatures` (see the module docstring for the rules).
    `dates` are the documents' ISO dates (`Document.date`); a missing or partial one sorts
    after every full date. With `texts` (doc_id → the text signed; only the candidates' are
    read, so a lazy mapping over stored documents will do) pairs are decided on their exact
    shingle sets instead of the MinHash estimates."""
    dates = dates or {}

    def priority(doc_id: str) -> tuple[bool, str, int, str]:
        return canonical_priority(doc_id, signatures, dates)

    verdicts: dict[tuple[str, str], bool] = {}
    shingles: dict[str, np.ndarray] = {}

    def copies(a: str, b: str) -> bool:
        key = (a, b) if a < b else (b, a)
        if key not in verdicts:
            sa, sb = signatures[a], signatures[b]
            if texts is None:
                sim = similarity(sa, sb)
            else:
                for d in key:
                    if d not in shingles:
                        shingles[d] = shingle_hashes(texts[d])
                sim = shingle_similarity(shingles[a], shingles[b])
            verdicts[key] = _decide(sim, min(sa.n_shingles, sb.n_shingles), thresholds)
        return verdicts[key]

    parent = {doc_id: doc_id for doc_id in signatures}
    for a, b in candidate_pairs(signatures, thresholds.bands):
        if copies(a, b):
            parent[_root(parent, a)] = _root(parent, b)
    components: dict[str, list[str]] = {}
    for doc_id in sorted(signatures):
        components.setdefault(_root(parent, doc_id), []).append(doc_id)
    groups = [
        group
        for members in components.values()
        if len(members) > 1
        for group in _complete_linkage(sorted(members, key=priority), copies)
    ]
    return sorted(groups, key=lambda g: g.canonical)


def canonical_priority(
    doc_id: str, signatures: Mapping[str, Signature], dates: Mapping[str, str | None]
) -> tuple[bool, str, int, str]:
    """A document's place in its group, first to last: earliest full date (documents without
    one last), then longest text, then smallest doc_id. The first is the canonical."""
    day = full_date(dates.get(doc_id))
    return (day is None, day.isoformat() if day else "", -signatures[doc_id].n_chars, doc_id)


def _root(parent: dict[str, str], doc_id: str) -> str:
    while parent[doc_id] != doc_id:
        parent[doc_id] = parent[parent[doc_id]]
        doc_id = parent[doc_id]
    return doc_id


def _complete_linkage(ordered: list[str], check: Callable[[str, str], bool]) -> Iterator[CopyGroup]:
    """Split a connected component (in priority order) into groups whose members are all
    copies of each other: the first left becomes a canonical, and each next document joins it
    when it is a copy of every member so far."""
    left = ordered
    while len(left) > 1:
        group, rest = [left[0]], []
        for doc_id in left[1:]:
            (group if all(check(doc_id, g) for g in group) else rest).append(doc_id)
        if len(group) > 1:
            yield CopyGroup(group[0], tuple(group[1:]))
        left = rest


def canonical_of(groups: Iterable[CopyGroup]) -> dict[str, str]:
    """Each copy's canonical document id (canonical documents map to themselves)."""
    return {doc_id: g.canonical for g in groups for doc_id in g.members}
