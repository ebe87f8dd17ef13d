"""Copy detection as an index version records it: the parameters and the groups.

What `rag.ingest.near_duplicates` makes signatures and groups with (`SIGNATURE_FORMAT`, which names
the shingle width and the permutation count, and `Thresholds`), the groups it returns
(`CopyGroup`), and the manifest's `copies` record built from them (`rag.ingest.copies`). A version
whose record names other parameters is not current (`is_current`): the next `rag index`
regroups it without re-embedding anything.

Standard library only, so the no-op `rag index` (`rag.index.noop`) can tell whether a version's
copies are current without importing numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SHINGLE_WORDS = 5
NUM_PERM = 128
BANDS = 64  # LSH bands of NUM_PERM // BANDS minima each
SIGNATURE_FORMAT = f"minhash-blake2b-w{SHINGLE_WORDS}-p{NUM_PERM}-v1"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When two signatures are copies, and how candidates are found (see
    `rag.ingest.near_duplicates`)."""

    containment: float = 0.8
    jaccard: float = 0.8
    min_shingles: int = 10
    bands: int = BANDS  # 2 minima a band: a pair at Jaccard .3 is a candidate with
    # probability 1 - (1 - .3²)⁶⁴ > .99, one at .05 with .15

    def __post_init__(self) -> None:
        if self.bands < 1 or NUM_PERM % self.bands:
            raise ValueError(f"bands must divide {NUM_PERM}, got {self.bands}")


@dataclass(frozen=True, slots=True)
class CopyGroup:
    """One story published more than once: its canonical document and the copies of it."""

    canonical: str
    copies: tuple[str, ...]

    @property
    def members(self) -> tuple[str, ...]:
        return (self.canonical, *self.copies)


THRESHOLDS = Thresholds()  # what builds group with


def manifest_record(groups: list[CopyGroup]) -> dict[str, Any]:
    """The manifest's `copies` entry for a version whose copy groups are `groups`."""
    return {
        "signature_format": SIGNATURE_FORMAT,
        "thresholds": asdict(THRESHOLDS),
        "groups": [list(g.members) for g in groups],
    }


def is_current(record: Mapping[str, Any]) -> bool:
    """Whether a version's groups (its manifest's `copies` record) were made with this
    signature format and thresholds."""
    made_with = (record.get("signature_format"), record.get("thresholds"))
    return made_with == (SIGNATURE_FORMAT, asdict(THRESHOLDS))


def groups_from(record: Mapping[str, Any]) -> list[CopyGroup]:
    """The groups a version recorded (its manifest's `copies` record); none for a version
    built before copies were detected."""
    return [CopyGroup(m[0], tuple(m[1:])) for m in record.get("groups", []) if len(m) > 1]
