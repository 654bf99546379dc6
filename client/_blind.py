"""Blinding: keyed BLAKE2b-128 over kind, canon version and canonical value.

``digest = BLAKE2b(key=collaboration_key[epoch], digest_size=16, person="sighub.blind.v1",
data = kind ‖ 0x00 ‖ canon_version ‖ 0x00 ‖ canonical_value)``.  The personalisation and
the kind/version prefix separate this use of the key from any other.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Final

from client._canon import MAX_PHRASE_WORDS, canonicalize, extract_parts
from client._errors import ModelError
from client._model import BLIND_SCHEME, CANON_VERSION, Kind, check_collab

__all__ = ["BLIND_SCHEME", "BlindedText", "Blinder", "CollabKey", "blind"]

PERSON: Final = b"sighub.blind.v1"
KEY_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class CollabKey:
    """One epoch of a collaboration's blinding key."""

    collaboration: str
    epoch: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_collab("CollabKey", self.collaboration)
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) or self.epoch < 0:
            raise ModelError("CollabKey", "epoch", self.epoch, "an integer >= 0")
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_BYTES:
            got = len(self.secret) if isinstance(self.secret, bytes) else type(self.secret)
            raise ModelError("CollabKey", "secret", f"<{got} bytes>", f"{KEY_BYTES} bytes")

    @classmethod
    def generate(cls, collaboration: str, epoch: int = 0) -> CollabKey:
        return cls(collaboration, epoch, secrets.token_bytes(KEY_BYTES))


def _prefix(kind: Kind) -> bytes:
    return kind.value.encode() + b"\x00" + CANON_VERSION.encode() + b"\x00"


def blind(key: CollabKey, kind: Kind, canonical_value: str) -> str:
    """Hex digest of an already canonical value."""
    h = hashlib.blake2b(key=key.secret, digest_size=16, person=PERSON)
    h.update(_prefix(kind) + canonical_value.encode("utf-8"))
    return h.hexdigest()


class Blinder:
    """Blinds analyst values and scans texts under one collaboration key epoch.

    Keeps one keyed hash state per kind and copies it per candidate, and remembers recent
    digests: a matcher hashes every word and phrase of every text it scans, and words and
    common phrases recur across texts (Zipf), so most single words and many phrases are
    dictionary hits instead of hash computations.
    """

    __slots__ = ("_cache", "_states", "key")

    CACHE_MAX: Final = 1 << 18

    def __init__(self, key: CollabKey) -> None:
        self.key = key
        self._states = {}
        for kind in Kind:
            h = hashlib.blake2b(key=key.secret, digest_size=16, person=PERSON)
            h.update(_prefix(kind))
            self._states[kind.value] = h
        self._cache: dict[str, dict[bytes, bytes]] = {k.value: {} for k in Kind}

    def value(self, kind: Kind, value: str) -> str:
        """Canonicalize an analyst's value and blind it (hex digest)."""
        return self.canonical(kind, canonicalize(kind, value)).hex()

    def canonical(self, kind: Kind, canonical_value: str) -> bytes:
        """The digest of an already canonical value."""
        h = self._states[kind.value].copy()
        h.update(canonical_value.encode("utf-8"))
        return h.digest()

    def text(self, text: str) -> BlindedText:
        """Blind every candidate of ``text``: see BlindedText for the layout."""
        words, rest = extract_parts(text)
        digests = self._phrases(words) if words else []
        for kind, value, _, _ in rest:
            digests.append(self._digest(kind, value.encode("utf-8")))
        return BlindedText(words, rest, digests)

    def _digest(self, kind: str, data: bytes) -> bytes:
        cache = self._cache[kind]
        digest = cache.get(data)
        if digest is None:
            h = self._states[kind].copy()
            h.update(data)
            digest = h.digest()
            if len(cache) >= self.CACHE_MAX:
                cache.clear()
            cache[data] = digest
        return digest

    def _phrases(self, words: list[tuple[str, int, int]]) -> list[bytes]:
        # Encode the words once, joined by spaces; a phrase is then a slice of that buffer.
        # Slicing, cache look-ups and misses run as separate C-level passes: this loop is
        # the matcher's hot path.
        encoded = [w[0].encode("utf-8") for w in words]
        buf = b" ".join(encoded)
        begins, ends = [], []
        pos = 0
        for e in encoded:
            begins.append(pos)
            pos += len(e)
            ends.append(pos)
            pos += 1
        w = MAX_PHRASE_WORDS
        slices = [buf[b:e] for i, b in enumerate(begins) for e in ends[i : i + w]]
        cache = self._cache["keyword"]
        if len(cache) >= self.CACHE_MAX:
            cache.clear()
        digests: list[bytes | None] = list(map(cache.get, slices))
        copy = self._states["keyword"].copy
        for k in [k for k, d in enumerate(digests) if d is None]:
            h = copy()
            h.update(slices[k])
            digests[k] = cache[slices[k]] = h.digest()
        return digests  # type: ignore[return-value]  # every None was filled


class BlindedText:
    """The blinded candidates of one text.

    ``digests`` lists first every keyword candidate, word by word (for word ``i`` the
    phrases ``i..i``, ``i..i+1`` up to four words), then one digest per entry of ``rest``.
    ``candidate(k)`` turns an index into (kind, start, end) in the original text; a matcher
    calls it only for the few digests that hit.
    """

    __slots__ = ("_firsts", "digests", "rest", "words")

    def __init__(
        self,
        words: list[tuple[str, int, int]],
        rest: list[tuple[str, str, int, int]],
        digests: list[bytes],
    ) -> None:
        self.words, self.rest, self.digests = words, rest, digests
        self._firsts: list[int] | None = None

    @property
    def phrase_count(self) -> int:
        return len(self.digests) - len(self.rest)

    def candidate(self, k: int) -> tuple[str, int, int]:
        """(kind, start, end) of candidate ``k``, span in the original text."""
        n_phrases = self.phrase_count
        if k >= n_phrases:
            kind, _, start, end = self.rest[k - n_phrases]
            return kind, start, end
        if self._firsts is None:
            n = len(self.words)
            self._firsts = list(
                itertools.accumulate((min(MAX_PHRASE_WORDS, n - i) for i in range(n)), initial=0)
            )
        i = bisect.bisect_right(self._firsts, k) - 1
        j = i + k - self._firsts[i]
        return "keyword", self.words[i][1], self.words[j][2]
