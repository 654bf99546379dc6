"""The local rule engine: which shared indicators fire in a text, where, from whom.

Blinded indicators are looked up by the digests of the text's canon/1 candidates, per
collaboration key epoch.  Pattern indicators run over the folded text: pattern sets
(Hyperscan where it installs, RE2's set otherwise), sharded by a hash of the pattern so a
change recompiles one shard, find which patterns match at all, and RE2 then gives the
exact leftmost-longest spans, so both engines yield identical results.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import re2

from sighub.client._blind import BlindedText, Blinder, CollabKey
from sighub.client._canon import fold, scalar, scan_parts
from sighub.client._canon._text import fold_fast
from sighub.client._errors import EXIT_BAD_INPUT, SighubError
from sighub.client._local import LOCAL_DB, LocalStore, StoredIndicator
from sighub.client._model import Kind, Tlp

__all__ = [
    "MAX_SCAN_CHARS",
    "Hit",
    "LiveMatcher",
    "Match",
    "Matcher",
    "TextTooLong",
]

# The longest text ``Matcher.scan`` accepts by default (scan time is linear in the length).
MAX_SCAN_CHARS = 1 << 20


class TextTooLong(SighubError, ValueError):
    """A text longer than the matcher was told to accept."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, length: int, limit: int) -> None:
        self.length, self.limit = length, limit
        super().__init__(f"text: length: received {length} characters, expected at most {limit}")


log = logging.getLogger("sighub.matcher")

try:  # Hyperscan ships x86-64 Linux wheels only
    import hyperscan

    HAVE_HYPERSCAN = True
except ImportError:  # pragma: no cover - exercised where hyperscan does not install
    HAVE_HYPERSCAN = False


# TLP 2.0 levels from least to most restrictive: a span several indicators flag is
# handled under the strictest of their levels.
_TLP_ORDER: dict[Tlp, int] = {t: k for k, t in enumerate(Tlp)}


@dataclass(frozen=True, slots=True)
class Hit:
    """One indicator that fired on a :class:`Match`'s span: who shared it, how sure they
    are, and under which terms (``tlp``; ``valid_until`` is RFC 3339 UTC)."""

    indicator: str
    kind: Kind
    collaboration: str
    publisher: str
    publisher_id: str
    confidence: int
    labels: tuple[str, ...]
    description: str
    tlp: Tlp
    valid_until: str


@dataclass(frozen=True, slots=True)
class Match:
    """A span of the scanned text where one or more indicators fire.

    ``start``/``end`` index the ORIGINAL text and ``text`` is that slice.  ``hits`` holds
    every indicator that fired on exactly this span (a blinded keyword and a pattern from
    two publishers, say), highest confidence first, then by indicator id; it is never
    empty.  The other attributes summarise the hits: the first hit's ``indicator``,
    ``kind``, ``collaboration``, ``publisher``, ``publisher_id`` and ``description``; the
    highest ``confidence``; the union of ``labels``; the strictest ``tlp`` (act on ``red``
    only inside the platform); the latest ``valid_until``."""

    start: int
    end: int
    text: str
    hits: tuple[Hit, ...]

    @property
    def indicator(self) -> str:
        """The id of the first hit's indicator (``indicators`` lists them all)."""
        return self.hits[0].indicator

    @property
    def indicators(self) -> tuple[str, ...]:
        """The ids of every indicator that fired on this span, in ``hits`` order."""
        return tuple(h.indicator for h in self.hits)

    @property
    def kind(self) -> Kind:
        """The first hit's kind."""
        return self.hits[0].kind

    @property
    def collaboration(self) -> str:
        """The first hit's collaboration."""
        return self.hits[0].collaboration

    @property
    def publisher(self) -> str:
        """The first hit's publisher name."""
        return self.hits[0].publisher

    @property
    def publisher_id(self) -> str:
        """The first hit's publisher identity (``identity--UUID``)."""
        return self.hits[0].publisher_id

    @property
    def description(self) -> str:
        """The first hit's description."""
        return self.hits[0].description

    @property
    def confidence(self) -> int:
        """The highest confidence (0-100) among the hits."""
        return self.hits[0].confidence

    @property
    def labels(self) -> tuple[str, ...]:
        """Every hit's labels, each once, in ``hits`` order."""
        return tuple(dict.fromkeys(x for h in self.hits for x in h.labels))

    @property
    def tlp(self) -> Tlp:
        """The strictest TLP among the hits."""
        return max((h.tlp for h in self.hits), key=_TLP_ORDER.__getitem__)

    @property
    def valid_until(self) -> str:
        """The latest expiry among the hits (RFC 3339 UTC): the span stays flagged until
        then unless the indicators are revoked."""
        return max(h.valid_until for h in self.hits)


def _hit(ind: StoredIndicator) -> Hit:
    return Hit(
        ind.id,
        Kind(ind.kind),
        ind.collab,
        ind.publisher_name,
        ind.publisher,
        ind.confidence,
        ind.labels,
        ind.description,
        Tlp(ind.tlp),
        ind.valid_until,
    )


def _grouped(text: str, found: list[tuple[int, int, StoredIndicator]]) -> list[Match]:
    """One Match per span, keeping every indicator that fired on it (once each)."""
    spans: dict[tuple[int, int], dict[str, Hit]] = defaultdict(dict)
    for start, end, ind in found:
        spans[(start, end)].setdefault(ind.id, _hit(ind))
    return [
        Match(s, e, text[s:e], tuple(sorted(hits.values(), key=_hit_order)))
        for (s, e), hits in sorted(spans.items())
    ]


def _hit_order(h: Hit) -> tuple[int, str]:
    return -h.confidence, h.indicator


def _span_options() -> re2.Options:
    options = re2.Options()
    options.longest_match = True
    options.log_errors = False
    return options


_SPAN_OPTIONS = _span_options()

# Pattern shards: a change recompiles one shard instead of every pattern.  Each shard is
# scanned on its own (about 0.4 us a call over a 280-byte text), so the count trades
# reload time against scan time; 32 keeps a shard at about 3,000 patterns for 1M
# indicators (1 in 10 a pattern) and the scan cost within a few percent.
PATTERN_SHARDS = 32

# A shard that lost patterns but gained none is kept, its dropped patterns masked (they
# no longer map to any rule), unless more than this fraction of it is dead weight.
_MAX_DEAD = 0.25


def shard_of(source: str, shards: int) -> int:
    """The shard of a pattern: a stable hash of its source, so that rules sharing a
    pattern share one compiled copy, and replacing an indicator row leaves it in place.
    (BLAKE2b, not CRC-32: CRC is linear, and patterns that differ in a digit or two fall
    into a few shards of a power-of-two count.)"""
    digest = hashlib.blake2b(source.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") % shards


class _Shard:
    """One compiled pattern set: which of its patterns match (a set, one pass); exact
    spans come from RE2, each pattern compiled the first time it fires."""

    def __init__(self, sources: tuple[str, ...], engine: str) -> None:
        self.sources = sources
        self.engine = engine
        self._spans: dict[int, Any] = {}
        self._hs: Any = None
        self._set: Any = None
        if engine == "hyperscan":
            db = hyperscan.Database()
            flag = hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_SINGLEMATCH
            db.compile(
                expressions=[p.encode() for p in sources],
                ids=list(range(len(sources))),
                flags=[flag] * len(sources),
            )
            self._hs = db
        else:
            set_options = re2.Options()
            set_options.log_errors = False
            set_options.max_mem = 512 << 20  # a set of thousands of patterns needs room
            s = re2.Set.SearchSet(set_options)
            for p in sources:
                s.Add(p)
            s.Compile()
            self._set = s

    def which(self, folded: str, data: bytes) -> list[int]:
        """Indices into ``sources`` of the patterns that match ``folded`` (``data`` is
        its UTF-8, encoded once for every shard)."""
        if self._hs is not None:
            hits: list[int] = []
            self._hs.scan(data, lambda i, *_: hits.append(i))  # positional: cheaper call
            return hits
        return list(self._set.Match(folded) or ())  # None when nothing matches

    def spans(self, k: int, folded: str) -> list[tuple[int, int]]:
        compiled = self._spans.get(k)
        if compiled is None:  # a race only compiles twice; the gate vouched for the pattern
            compiled = self._spans[k] = re2.compile(self.sources[k], _SPAN_OPTIONS)
        return [m.span() for m in compiled.finditer(folded)]

    def keeps(self, sources: set[str]) -> bool:
        """Whether this shard can serve ``sources`` by masking what it no longer needs."""
        return len(sources) >= (1 - _MAX_DEAD) * len(self.sources) and sources.issubset(
            self.sources
        )


class _Patterns:
    """The pattern indicators: source -> rule references, and the shards compiled from
    the sources (``None`` for an empty shard, which is not scanned)."""

    def __init__(
        self,
        refs: dict[str, Any],
        engine: str,
        shards: int,
        previous: _Patterns | None,
    ) -> None:
        self.refs = refs
        self.engine = engine
        self.compiled = 0  # shards compiled by this build (the rest reused)
        buckets: list[set[str]] = [set() for _ in range(shards)]
        for source in refs:
            buckets[shard_of(source, shards)].add(source)
        reusable: list[_Shard | None] = (
            previous.shards
            if previous is not None and previous.engine == engine and len(previous.shards) == shards
            else [None] * shards
        )
        built: list[_Shard | None] = []
        for k in range(shards):
            bucket, old = buckets[k], reusable[k]
            buckets[k] = set()  # free the build-time copy as the shard is done
            if not bucket:
                built.append(None)
            elif old is not None and old.keeps(bucket):
                built.append(old)
            else:  # one shard at a time: the build's peak is one shard's compile
                built.append(_Shard(tuple(sorted(bucket)), engine))
                self.compiled += 1
        self.shards: list[_Shard | None] = built
        self._live = [s for s in built if s is not None]

    def scan(self, folded: str) -> list[tuple[_Shard, int, Any]]:
        """(shard, pattern index, rule references) of each pattern that fires.  Their
        order does not reach the results: ``_grouped`` sorts spans and hits."""
        if not self._live:
            return []
        data = folded.encode() if self.engine == "hyperscan" else b""
        out: list[tuple[_Shard, int, Any]] = []
        for shard in self._live:
            for k in shard.which(folded, data):
                refs = self.refs.get(shard.sources[k])
                if refs is not None:  # None: a pattern masked since it was revoked
                    out.append((shard, k, refs))
        return out


# A rule as the build needs it: (reference, collaboration, key epoch, form, value).  The
# reference finds the full indicator again, only when it fires.
Entry = tuple[int, str, "int | None", str, str]


class _StoreRules:
    """Rule metadata read from the local store on a hit (a million rules held as objects
    would take a gigabyte); a small cache keeps repeat hits cheap."""

    def __init__(self, path: Path) -> None:
        self.store = LocalStore(path)
        self.lock = threading.Lock()
        self.cache: dict[int, StoredIndicator | None] = {}

    def __call__(self, ref: int) -> StoredIndicator | None:
        if ref in self.cache:
            return self.cache[ref]
        with self.lock:  # one connection, shared by the threads that scan
            hit = self.store.by_rowid(ref)
        if len(self.cache) > _RULE_CACHE:
            self.cache.clear()
        self.cache[ref] = hit
        return hit


_RULE_CACHE = 65536


class Matcher:
    """An immutable rule set compiled from indicators and their collaboration keys.

    Blinded rules are held as digest -> reference tables (about 100 bytes a rule); the
    full indicator is looked up only for the digests that hit.
    """

    def __init__(
        self,
        indicators: Iterable[StoredIndicator],
        keys: dict[tuple[str, int], bytes],
        engine: str | None = None,
        previous: Matcher | None = None,
        shards: int = PATTERN_SHARDS,
    ) -> None:
        rules = list(indicators)
        entries = ((k, r.collab, r.key_epoch, r.form, r.value) for k, r in enumerate(rules))
        self._build(entries, rules.__getitem__, keys, engine, previous, shards)

    @classmethod
    def from_store(
        cls,
        store: LocalStore,
        now: datetime | None = None,
        engine: str | None = None,
        previous: Matcher | None = None,
        shards: int = PATTERN_SHARDS,
    ) -> Matcher:
        """A matcher over the indicators of ``store`` in force at ``now`` (default: the
        current time) and the store's collaboration keys.  ``previous`` lends each of its
        compiled pattern shards whose patterns are unchanged (compiling takes seconds), so
        a one-pattern change recompiles one of ``shards`` shards."""
        keys = {(c, e): s for c, e, s in store.collab_keys()}
        m = cls.__new__(cls)
        entries = store.active_entries(now or datetime.now(UTC))
        m._build(entries, _StoreRules(store.path), keys, engine, previous, shards)
        return m

    def _build(
        self,
        entries: Iterable[Entry],
        lookup: Callable[[int], StoredIndicator | None],
        keys: dict[tuple[str, int], bytes],
        engine: str | None,
        previous: Matcher | None,
        shards: int = PATTERN_SHARDS,
    ) -> None:
        self.engine = engine or ("hyperscan" if HAVE_HYPERSCAN else "re2")
        self._lookup = lookup
        tables: dict[tuple[str, int], dict[bytes, Any]] = defaultdict(dict)
        pattern_refs: dict[str, Any] = {}  # source -> reference(s): shared patterns once
        self.size = 0
        for ref, collab, epoch, form, value in entries:
            self.size += 1
            if form == "pattern":
                seen = pattern_refs.get(value)
                pattern_refs[value] = ref if seen is None else (*_refs(seen), ref)
                continue
            group = (collab, epoch or 0)
            if group not in keys:
                log.warning("no key for %s epoch %s: a rule cannot match", *group)
                continue
            table = tables[group]
            digest = bytes.fromhex(value)
            seen = table.get(digest)  # a value shared by several rules keeps them all
            table[digest] = ref if seen is None else (*_refs(seen), ref)
        self._groups = [
            (Blinder(CollabKey(c, e, keys[(c, e)])), table)
            for (c, e), table in sorted(tables.items())
        ]
        del tables
        reuse = previous._patterns if previous is not None else None
        self._patterns: _Patterns = _Patterns(pattern_refs, self.engine, shards, reuse)

    def _rules(self, refs: Any, kind: str | None, value: str) -> list[StoredIndicator]:
        """The indicators behind ``refs``; ``value`` guards against a store that changed
        under this (about to be replaced) rule set."""
        found = [self._lookup(r) for r in _refs(refs)]
        return [
            i
            for i in found
            if i is not None and i.value == value and (kind is None or i.kind == kind)
        ]

    def scan(self, text: str, max_chars: int | None = MAX_SCAN_CHARS) -> list[Match]:
        """The indicators that fire in ``text``, ordered by span.

        Any ``str`` is accepted: a lone surrogate is read as U+FFFD (one code point for
        one, so spans index ``text`` unchanged; ``Match.text`` is a slice of ``text``).
        Time is linear in the length; a text longer than ``max_chars`` characters raises
        TextTooLong (``None``: no limit)."""
        if max_chars is not None and len(text) > max_chars:
            raise TextTooLong(len(text), max_chars)
        out: list[tuple[int, int, StoredIndicator]] = []
        work = scalar(text)  # usually ``text`` itself
        folded = fold_fast(work)  # once, for the candidates and the patterns
        if self._groups:
            words, rest = scan_parts(work, folded)  # once, whatever the number of key epochs
            for blinder, table in self._groups:
                out.extend(self._blinded_hits(blinder.parts(work, words, rest), table))
        if self._patterns.refs:
            out.extend(self._scan_patterns(work, folded))
        return _grouped(text, out) if out else []

    def _blinded_hits(
        self, scanned: BlindedText, table: dict[bytes, Any]
    ) -> list[tuple[int, int, StoredIndicator]]:
        if table.keys().isdisjoint(scanned.digests):  # the usual case: nothing fires
            return []
        out: list[tuple[int, int, StoredIndicator]] = []
        for k, digest in enumerate(scanned.digests):
            if digest in table:
                kind, start, end = scanned.candidate(k)
                rules = self._rules(table[digest], kind, digest.hex())
                out.extend((start, end, i) for i in rules)
        return out

    def _scan_patterns(self, work: str, folded_fast: str) -> list[tuple[int, int, StoredIndicator]]:
        found = self._patterns.scan(folded_fast)
        if not found:
            return []
        folded, src = fold(work)  # the offset map, only for texts where a pattern fired
        out: list[tuple[int, int, StoredIndicator]] = []
        for shard, k, refs in found:
            rules = self._rules(refs, None, shard.sources[k])
            for s, e in shard.spans(k, folded):
                start, end = (s, e) if src is None else (src[s], src[e - 1] + 1)
                out.extend((start, end, i) for i in rules)
        return out

    def scan_many(
        self, texts: Iterable[str], max_chars: int | None = MAX_SCAN_CHARS
    ) -> list[list[Match]]:
        """``scan`` of each text, in order; raises ``TextTooLong`` as ``scan`` does."""
        return [self.scan(t, max_chars) for t in texts]


def _refs(value: Any) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value,)


class LiveMatcher:
    """A matcher over a member's local store that reloads when the store changes,
    building the new rule set aside and swapping it in, so scans never wait.

    ``source`` is the member's data directory (or an open local store).  Keep it current
    by passing ``MatcherSink(live)`` to ``Member.follow`` or ``follow_in_background``;
    otherwise it changes only on ``reload()`` (which also drops indicators that expired
    since the last one).  ``engine`` is ``"hyperscan"`` or ``"re2"`` (default: Hyperscan
    where it is installed).  Raises ``SighubError`` when the store cannot be opened."""

    def __init__(self, source: Path | LocalStore, engine: str | None = None) -> None:
        store = source if isinstance(source, LocalStore) else LocalStore(source / LOCAL_DB)
        self.store, self.engine = store, engine
        self._lock = threading.Lock()
        self._version = ""
        self.current = Matcher([], {}, engine)
        self.reload()

    def reload(self, force: bool = False) -> bool:
        """Rebuild the rule set from the store if it changed (or a minute passed, which
        may expire indicators), or always with ``force``; True if it rebuilt.  Scans go on
        against the old rule set meanwhile."""
        version = f"{self.store.cursor}:{datetime.now(UTC).replace(second=0, microsecond=0)}"
        if not force and version == self._version:
            return False
        with self._lock:  # one rebuild at a time; scans keep using the old rule set
            fresh = Matcher.from_store(self.store, engine=self.engine, previous=self.current)
            self.current, self._version = fresh, version
        return True

    def scan(self, text: str, max_chars: int | None = MAX_SCAN_CHARS) -> list[Match]:
        """``Matcher.scan`` against the current rule set: the matches, ordered by span;
        raises ``TextTooLong`` for a text over ``max_chars``."""
        return self.current.scan(text, max_chars)
