"""Blinding: keyed BLAKE2b-128 over kind, canon version and canonical value.

``digest = BLAKE2b(key=collaboration_key[epoch], digest_size=16, person="sighub.blind.v1",
data = kind ‖ 0x00 ‖ canon_version ‖ 0x00 ‖ canonical_value)``.  The personalisation and
the kind/version prefix separate this use of the key from any other.

A ``Blinder`` serves one (canon version, blinding scheme) pair: it canonicalizes and
extracts with that canon and hashes with that scheme.  ``blinder_for`` is the one place a
pair is resolved, so a new canon or scheme is a new entry, not a new mechanism.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sighub.client._canon import MAX_PHRASE_WORDS, Canon, canon_for, scalar
from sighub.client._canon._text import BREAK
from sighub.client._errors import ModelError
from sighub.client._model import BLIND_SCHEME, CANON_VERSION, Kind, check_collab

__all__ = ["BLIND_SCHEME", "SCHEMES", "BlindedText", "Blinder", "CollabKey", "blind", "blinder_for"]

PERSON: Final = b"sighub.blind.v1"
_BLAKE2B: Final = type(hashlib.blake2b())
_COPY: Final = _BLAKE2B.copy
_UPDATE: Final = _BLAKE2B.update
_DIGEST: Final = _BLAKE2B.digest
KEY_BYTES: Final = 32
_NOT: Final = bytes([1]) + bytes(255)  # translate: 0 -> 1, anything else -> 0
# translate of ``previous + keep`` masks, with 0 (not kept before) deleted: 1 -> 0, 2 -> 1
_AGAIN: Final = bytes([0, 0, 1]) + bytes(253)


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
        """A fresh random key (32 bytes from ``secrets``) for ``collaboration``'s
        ``epoch``."""
        return cls(collaboration, epoch, secrets.token_bytes(KEY_BYTES))


def _prefix(kind: Kind, canon_version: str = CANON_VERSION) -> bytes:
    return kind.value.encode() + b"\x00" + canon_version.encode() + b"\x00"


def blind(
    key: CollabKey, kind: Kind, canonical_value: str, canon_version: str = CANON_VERSION
) -> str:
    """The blinded form of an already canonical value: keyed BLAKE2b-128 under ``key``,
    personalised per ``kind``, as 32 hex digits.  Never raises for a ``str`` value (see
    ``canonicalize`` for the checks on analyst input)."""
    h = hashlib.blake2b(key=key.secret, digest_size=16, person=PERSON)
    h.update(_prefix(kind, canon_version) + canonical_value.encode("utf-8"))
    return h.hexdigest()


class Blinder:
    """Blinds analyst values and scans texts under one collaboration key epoch.

    Keeps one keyed hash state per kind and copies it per candidate, and remembers recent
    digests: a matcher hashes every word and phrase of every text it scans, and words and
    common phrases recur across texts (Zipf), so most single words and many phrases are
    dictionary hits instead of hash computations.
    """

    __slots__ = ("_cache", "_states", "_words", "canon", "key")

    CACHE_MAX: Final = 1 << 16
    WORD_CACHE_MAX: Final = 1 << 16
    # Values longer than these are hashed but not remembered: they rarely recur, and the
    # caches must not grow with the length of the texts scanned.
    CACHE_KEY_BYTES: Final = 256
    WORD_CACHE_KEY_CHARS: Final = 64

    scheme: Final = BLIND_SCHEME

    def __init__(self, key: CollabKey, canon_version: str = CANON_VERSION) -> None:
        self.key = key
        self.canon: Canon = canon_for(canon_version)  # CanonError for an unknown version
        self._states = {}
        for kind in Kind:
            h = hashlib.blake2b(key=key.secret, digest_size=16, person=PERSON)
            h.update(_prefix(kind, canon_version))
            self._states[kind.value] = h
        self._cache: dict[str, dict[bytes, bytes]] = {k.value: {} for k in Kind}
        self._words: dict[str, tuple[Any, bytes, bytes]] = {}

    def value(self, kind: Kind, value: str) -> str:
        """Canonicalize an analyst's value under this canon and blind it (hex digest)."""
        return self.canonical(kind, self.canon.canonicalize(kind, value)).hex()

    def canonical(self, kind: Kind, canonical_value: str) -> bytes:
        """The digest of an already canonical value."""
        h = self._states[kind.value].copy()
        h.update(canonical_value.encode("utf-8"))
        return h.digest()

    def text(self, text: str) -> BlindedText:
        """Blind every candidate of ``text``: see BlindedText for the layout.  A lone
        surrogate reads as U+FFFD (see ``scalar``); spans index ``text`` all the same."""
        work = scalar(text)
        return self.parts(work, *self.canon.scan_parts(work, None))

    def parts(
        self, text: str, words: list[str], rest: list[tuple[str, str, int, int]]
    ) -> BlindedText:
        """Blind candidates already extracted by this canon's ``scan_parts(text)`` (a
        matcher with several key epochs extracts once per canon and blinds once per key);
        ``text`` holds no lone surrogate."""
        digests = self._phrases(words) if words else []
        for kind, value, _, _ in rest:
            digests.append(self._digest(kind, value.encode("utf-8")))
        return BlindedText(text, len(words), rest, digests, self.canon.word_spans)

    def _digest(self, kind: str, data: bytes) -> bytes:
        cache = self._cache[kind]
        digest = cache.get(data)
        if digest is None:
            h = self._states[kind].copy()
            h.update(data)
            digest = h.digest()
            if len(data) <= self.CACHE_KEY_BYTES:
                if len(cache) >= self.CACHE_MAX:
                    cache.clear()
                cache[data] = digest
        return digest

    def _phrases(self, words: list[str]) -> list[bytes]:
        """Digests of every phrase of 1..MAX_PHRASE_WORDS words, shortest phrases first.

        The hash state after absorbing word ``i`` is the start of every phrase beginning
        at ``i``: phrases of length L+1 copy the states of length L and absorb one more
        " word", so no phrase is ever built.  Single words recur across texts (Zipf), so
        their states and digests are cached.  Every per-candidate step is a C-level
        ``map``: this is the matcher's hot path.
        """
        if BREAK in words:
            return self._phrases_between_breaks(words)
        found = list(map(self._words.get, words))
        if None in found:
            found = [f or self._word(w) for f, w in zip(found, words, strict=True)]
        # Transpose the cached (state, digest, " word" bytes) entries in C.
        cached_states, first, spaced = zip(*found, strict=True)
        digests: list[bytes] = list(first)
        # The cached single-word states are copied once; longer phrases then extend the
        # same states in place (digest() does not finalize a state).
        states = list(map(_COPY, cached_states[:-1]))
        for length in range(2, MAX_PHRASE_WORDS + 1):
            if length > 2 and states:
                del states[-1]  # the phrase starting there has no next word
            collections.deque(map(_UPDATE, states, spaced[length - 1 :]), maxlen=0)
            digests += map(_DIGEST, states)
        return digests

    def _phrases_between_breaks(self, words: list[str]) -> list[bytes]:
        """``_phrases`` for a canon/2 word list with ``BREAK`` markers: the phrases that hold
        a break are never hashed (no indicator holds one), and the digests of the others
        keep the same order (by length, then by position).

        Masks hold a byte per word, kept as integers so that shifts and ors build them
        C-level: ``bad`` has a 1 at each start whose phrase of the current length holds a
        break, ``keep`` at each start whose phrase does not (and fits).  Each length then
        selects states and words by ``itertools.compress``, so the hot path stays free of
        per-word steps."""
        n = len(words)
        # The breaks are few: list.index skips between them in C, where a map calls
        # BREAK.__eq__ for every word.
        mask = bytearray(n)
        index = words.index
        at = -1
        try:
            while True:
                at = index(BREAK, at + 1)
                mask[at] = 1
        except ValueError:
            pass
        breaks = int.from_bytes(mask, "little")
        ones = int.from_bytes(b"\x01" * n, "little")
        found = list(map(self._words.get, words))
        if None in found:
            found = [f or self._word(w) for f, w in zip(found, words, strict=True)]
        cached_states, first, spaced = zip(*found, strict=True)
        digests: list[bytes] = list(itertools.compress(first, mask.translate(_NOT)))
        bad = breaks
        keep = ones ^ breaks
        states: list[Any] = []
        for length in range(2, MAX_PHRASE_WORDS + 1):
            if length > n:
                break
            shift = 8 * (length - 1)
            bad |= breaks >> shift
            previous = keep
            keep = (ones >> shift) & ~bad  # starts 0 .. n - length of no break
            if length == 2:  # copy the single-word states that start a longer phrase
                selected = keep.to_bytes(n, "little")
                states = list(map(_COPY, itertools.compress(cached_states, selected)))
            else:  # of the states kept so far, those kept again: a byte per state, C-level
                selected = (previous + keep).to_bytes(n, "little").translate(_AGAIN, b"\x00")
                states = list(itertools.compress(states, selected))
            # the last word of each kept phrase: the mask moved to the phrases' ends
            last = (keep << shift).to_bytes(n, "little")
            collections.deque(map(_UPDATE, states, itertools.compress(spaced, last)), maxlen=0)
            digests += map(_DIGEST, states)
        return digests

    def _word(self, word: str) -> tuple[Any, bytes, bytes]:
        encoded = word.encode("utf-8")
        h = self._states["keyword"].copy()
        h.update(encoded)
        entry = (h, h.digest(), b" " + encoded)
        if len(word) <= self.WORD_CACHE_KEY_CHARS:
            if len(self._words) >= self.WORD_CACHE_MAX:
                self._words.clear()
            self._words[word] = entry
        return entry


class BlindedText:
    """The blinded candidates of one text.

    ``digests`` lists first every keyword candidate, shortest phrases first (all single
    words in text order, then all two-word phrases, ... up to four words), then one digest
    per entry of ``rest``.  ``candidate(k)`` turns an index into (kind, start, end) in the
    original text; a matcher calls it only for the few digests that hit.
    """

    __slots__ = ("_layout", "_spans", "_word_spans", "digests", "n_words", "rest", "text")

    def __init__(
        self,
        text: str,
        n_words: int,
        rest: list[tuple[str, str, int, int]],
        digests: list[bytes],
        word_spans: Callable[[str], list[tuple[str, int, int]]] | None = None,
    ) -> None:
        self.text, self.n_words, self.rest, self.digests = text, n_words, rest, digests
        self._spans: list[tuple[str, int, int]] | None = None
        self._layout: tuple[tuple[int, int], ...] | None = None
        self._word_spans = word_spans or canon_for(CANON_VERSION).word_spans

    @property
    def phrase_count(self) -> int:
        """How many of ``digests`` are keyword words and phrases (the rest follow them)."""
        return len(self.digests) - len(self.rest)

    def candidate(self, k: int) -> tuple[str, int, int]:
        """(kind, start, end) of candidate ``k``, span in the original text."""
        n_phrases = self.phrase_count
        if not 0 <= k < len(self.digests):
            raise IndexError(f"candidate {k} of {len(self.digests)}")
        if k >= n_phrases:
            kind, _, start, end = self.rest[k - n_phrases]
            return kind, start, end
        if self._spans is None:
            self._spans = self._word_spans(self.text)
        n = self.n_words
        if self._layout is None:
            self._layout = (
                _layout(self._spans) if any(w == BREAK for w, _, _ in self._spans) else ()
            )
        if self._layout:  # phrases across a break were not hashed: see Blinder._phrases
            i, length = self._layout[k]
            return "keyword", self._spans[i][1], self._spans[i + length - 1][2]
        length = 1
        while k >= n - length + 1:  # skip the blocks of shorter phrases
            k -= n - length + 1
            length += 1
        return "keyword", self._spans[k][1], self._spans[k + length - 1][2]


def _layout(spans: list[tuple[str, int, int]]) -> tuple[tuple[int, int], ...]:
    """(first word, length) of each hashed phrase of a word list with breaks, in digest
    order: by length, then by position, none holding a break."""
    n = len(spans)
    # run[i]: how many words from i on before a break (0 at a break)
    run = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        run[i] = 0 if spans[i][0] == BREAK else run[i + 1] + 1
    return tuple(
        (i, length)
        for length in range(1, MAX_PHRASE_WORDS + 1)
        for i in range(n - length + 1)
        if run[i] >= length
    )


# The blinding schemes a matcher can scan with, by the name indicators carry.
SCHEMES: Final[dict[str, type[Blinder]]] = {BLIND_SCHEME: Blinder}


def blinder_for(key: CollabKey, canon_version: str, scheme: str = BLIND_SCHEME) -> Blinder:
    """The blinder of the pair (``canon_version``, ``scheme``) under ``key``; CanonError or
    ModelError naming what is unknown."""
    cls = SCHEMES.get(scheme)
    if cls is None:
        raise ModelError("Blinder", "scheme", scheme, f"one of {sorted(SCHEMES)}")
    return cls(key, canon_version)
