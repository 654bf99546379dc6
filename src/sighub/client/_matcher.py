"""The local rule engine: which shared indicators fire in a text, where, from whom.

Blinded indicators are looked up by the digests of the text's candidates, per
collaboration key epoch and (canon version, blinding scheme) pair: a text is folded once
under each canon version the rules use, and blinded under each pair.  Pattern indicators
run over the text folded by their own canon version: pattern sets (Hyperscan where it
installs, RE2's set otherwise; per canon version, a large base set and a small delta set
of the patterns added since, so that a change compiles only the delta) find which patterns
match at all, and RE2 then gives the exact leftmost-longest spans, so both engines yield
identical results.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import heapq
import itertools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import re2

from sighub.client._blind import BlindedText, Blinder, CollabKey, blinder_for
from sighub.client._canon import Canon, canon_for, scalar
from sighub.client._errors import EXIT_BAD_INPUT, SighubError
from sighub.client._local import LOCAL_DB, LocalStore, StoredIndicator
from sighub.client._model import BLIND_SCHEME, CANON_VERSION, CANON_VERSIONS, Kind, Tlp
from sighub.client._stix import format_time

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
# Spans reported per pattern per text: past this a pattern is firing everywhere, and more
# spans tell an analyst nothing new.
MAX_SPANS = 1000


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

# Patterns added since the base set was compiled go to a small delta set, compiled in
# milliseconds; revoked ones stay in the base set, masked (they map to no rule).  Past
# either limit the next build compiles every live pattern into a new base set: the slow
# path (seconds per 10,000 patterns), taken once per DELTA_MAX additions or so.
DELTA_MAX = 256


def mask_max(base: int) -> int:
    """How many masked patterns a base set of ``base`` patterns may carry."""
    return max(DELTA_MAX, base // 20)


# Compiling a pattern set takes memory superlinear in its size (about 540 MB for 50,000
# patterns with Hyperscan), so the base is split into sets of at most this many patterns.
# Each set costs a scan one more call (about 0.3% of a 1 KB text's scan time), so few.
BASE_SET_MAX = 25_000


def _trim_heap() -> None:
    """Give back to the system the heap a compile freed: glibc keeps it otherwise, and
    a Hyperscan compile frees about 20 times the size of the database it makes."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _libc_malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        return None


_malloc_trim = _libc_malloc_trim()


def _compiled(sources: tuple[str, ...], engine: str) -> _PatternSet:
    compiled = _PatternSet(sources, engine)
    _trim_heap()
    return compiled


class _PatternSet:
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
        its UTF-8, encoded once for both sets)."""
        if self._hs is not None:
            hits: list[int] = []
            self._hs.scan(data, lambda i, *_: hits.append(i))  # positional: cheaper call
            return hits
        return list(self._set.Match(folded) or ())  # None when nothing matches

    def spans(self, k: int, folded: str) -> list[tuple[int, int]]:
        compiled = self._spans.get(k)
        if compiled is None:  # a race only compiles twice; the gate vouched for the pattern
            compiled = self._spans[k] = re2.compile(self.sources[k], _SPAN_OPTIONS)
        # Bounded: a one-character pattern in a 1 MiB text would otherwise make a million
        # spans (and a million matches) for one scan.
        return [m.span() for m in itertools.islice(compiled.finditer(folded), MAX_SPANS)]


class _Patterns:
    """The pattern indicators: source -> rule references, a base compiled from the sources
    at the last full compile (in sets of at most BASE_SET_MAX), and a delta set of the
    sources added since."""

    def __init__(self, refs: dict[str, Any], engine: str, previous: _Patterns | None) -> None:
        self.refs = refs
        self.engine = engine
        self.full = False  # whether this build compiled the base (the slow path)
        self.base: tuple[_PatternSet, ...]
        self.base_sources: frozenset[str]
        self.delta: _PatternSet | None
        old = previous if previous is not None and previous.engine == engine else None
        if old is not None:
            added = tuple(sorted(s for s in refs if s not in old.base_sources))
            masked = len(old.base_sources) - (len(refs) - len(added))
            if len(added) <= DELTA_MAX and masked <= mask_max(len(old.base_sources)):
                self.base, self.base_sources = old.base, old.base_sources
                if old.delta is not None and old.delta.sources == added:
                    self.delta = old.delta
                else:
                    self.delta = _compiled(added, engine) if added else None
                self._live = [*self.base, *([self.delta] if self.delta else [])]
                return
        self.full = True
        sources = sorted(refs)
        self.base_sources = frozenset(sources)
        # one set at a time, the heap returned after each: the peak is one set's compile
        self.base = tuple(
            _compiled(tuple(sources[k : k + BASE_SET_MAX]), engine)
            for k in range(0, len(sources), BASE_SET_MAX)
        )
        self.delta = None
        self._live = list(self.base)

    @property
    def masked(self) -> int:
        """Base patterns that no longer map to a rule."""
        return sum(1 for s in self.base_sources if s not in self.refs)

    def scan(self, folded: str) -> list[tuple[_PatternSet, int, Any]]:
        """(set, pattern index, rule references) of each pattern that fires.  Their order
        does not reach the results: ``_grouped`` sorts spans and hits."""
        if not self._live:
            return []
        data = folded.encode() if self.engine == "hyperscan" else b""
        out: list[tuple[_PatternSet, int, Any]] = []
        for patterns in self._live:
            for k in patterns.which(folded, data):
                refs = self.refs.get(patterns.sources[k])
                if refs is not None:  # None: a pattern masked since it was revoked
                    out.append((patterns, k, refs))
        return out


# A digest table: digest -> reference, or a tuple of them when rules share a value.
Table = dict[bytes, Any]


def _put(table: dict[Any, Any], key: Any, ref: int) -> bool:
    seen = table.get(key)
    if seen is None:
        table[key] = ref
        return True
    refs = _refs(seen)
    if ref in refs:
        return False
    table[key] = (*refs, ref)
    return True


def _drop(table: dict[Any, Any], key: Any, ref: int) -> bool:
    seen = table.get(key)
    if seen is None:
        return False
    refs = _refs(seen)
    if ref not in refs:
        return False
    rest = tuple(r for r in refs if r != ref)
    if not rest:
        del table[key]
    else:
        table[key] = rest[0] if len(rest) == 1 else rest
    return True


# A digest table's group: (collaboration, key epoch, canon version, blinding scheme).
Group = tuple[str, int, str, str]


class _Rules:
    """The rule references a matcher scans with: a digest table per group (collaboration,
    key epoch, canon version, blinding scheme), pattern source -> references, and the
    rules whose key is missing.  A reload edits a ``fork``, which copies a table the first
    time it changes it: the previous matcher, still scanning, keeps its own, and unchanged
    tables are shared."""

    def __init__(self, keys: dict[tuple[str, int], bytes], shared: _Rules | None = None) -> None:
        self.keys = keys
        self.tables: dict[Group, Table] = {}
        self.patterns: dict[str, dict[str, Any]] = {}  # canon version -> source -> refs
        self.keyless: set[int] = set()
        self.size = 0  # rules held, the keyless included
        self._copied: set[object] | None = None  # None: every table is this object's own
        self._warned: set[tuple[str | int, ...]] = set()  # groups already warned of
        if shared is not None:
            self.tables, self.patterns = dict(shared.tables), dict(shared.patterns)
            self.keyless, self.size = set(shared.keyless), shared.size
            self._copied = set()

    def fork(self) -> _Rules:
        """A copy sharing every table until it is changed."""
        return _Rules(self.keys, self)

    def _own(self, held: dict[Any, dict[Any, Any]], key: Any, mark: object) -> dict[Any, Any]:
        """``held[key]``, made this object's own (``mark`` says it is) before a change: a
        fork copies a shared table the first time it changes it."""
        table = held.get(key)
        if table is None:
            table = held[key] = {}
        elif self._copied is not None and mark not in self._copied:
            table = held[key] = dict(table)  # about 20 ms a million rules
        if self._copied is not None:
            self._copied.add(mark)
        return table

    def _table(self, group: Group) -> Table:
        return self._own(self.tables, group, group)

    def _pattern_refs(self, canon: str) -> dict[str, Any]:
        return self._own(self.patterns, canon, ("patterns", canon))

    def add(
        self, ref: int, collab: str, epoch: int | None, form: str, value: str,
        canon: str = CANON_VERSION, scheme: str = BLIND_SCHEME,
    ) -> None:  # fmt: skip
        key = (collab, epoch or 0)
        if form == "pattern":
            added = _put(self._pattern_refs(canon), value, ref)
        elif key in self.keys:
            added = _put(self._table((*key, canon, scheme)), bytes.fromhex(value), ref)
        else:
            if key not in self._warned:
                self._warned.add(key)
                log.warning("no key for %s epoch %s: its rules cannot match", *key)
            added = ref not in self.keyless
            self.keyless.add(ref)
        self.size += added

    def drop(
        self, ref: int, collab: str, epoch: int | None, form: str, value: str,
        canon: str = CANON_VERSION, scheme: str = BLIND_SCHEME,
    ) -> None:  # fmt: skip
        key = (collab, epoch or 0)
        group = (*key, canon, scheme)
        if form == "pattern":
            held = value in self.patterns.get(canon, {})
            gone = held and _drop(self._pattern_refs(canon), value, ref)
        elif key in self.keys:
            digest = bytes.fromhex(value)
            held = digest in self.tables.get(group, {})
            gone = held and _drop(self._table(group), digest, ref)
        else:
            gone = ref in self.keyless
            self.keyless.discard(ref)
        self.size -= gone


class _Cursor:
    """Where a matcher built from a store stands in it: the rows it read (up to rowid
    ``top``, changes up to entry ``changes``), at time ``at``, and the rows it holds back
    until their ``valid_from`` (a heap of (valid_from, rowid))."""

    def __init__(
        self, path: Path, at: datetime, top: int, changes: int, pending: list[tuple[str, int]]
    ) -> None:
        self.path, self.at, self.top, self.changes, self.pending = path, at, top, changes, pending


def _take(rules: _Rules, rows: Iterable[tuple[Any, ...]], t: str, pending: list[Any]) -> None:
    """Add the rows in force at ``t`` (formatted); hold back those that start later."""
    for ref, collab, epoch, form, value, canon, scheme, valid_from, valid_until, revoked in rows:
        if revoked or valid_until <= t:
            continue
        if valid_from > t:
            heapq.heappush(pending, (valid_from, ref))
        else:
            rules.add(ref, collab, epoch, form, value, canon, scheme)


def _read_all(
    store: LocalStore, keys: dict[tuple[str, int], bytes], now: datetime
) -> tuple[_Rules, _Cursor]:
    """Every row of ``store`` in force at ``now``, and where that leaves the cursor."""
    rules, pending = _Rules(keys), list[tuple[str, int]]()
    with store.snapshot():
        _take(rules, store.live_rows(now), format_time(now), pending)
        last = store.last_change()
        top = store.top_rowid()
    return rules, _Cursor(store.path, now, top, last, pending)


def _read_changes(
    store: LocalStore, rules: _Rules, cursor: _Cursor, now: datetime
) -> tuple[_Rules, _Cursor] | None:
    """``rules`` brought from ``cursor`` to the store as it is now: changed rows
    forgotten, rows expired since dropped, new and due rows added.  None when the store
    no longer lists every change since ``cursor`` (then every row is read again)."""
    t = format_time(now)
    with store.snapshot():
        changes = store.changes_after(cursor.changes)
        if changes is None:
            return None
        _, last, gone = changes
        expired = store.expired_between(cursor.at, now)
        fresh = store.rows_after(cursor.top)
        pending = list(cursor.pending)
        due: list[int] = []
        while pending and pending[0][0] <= t:
            due.append(heapq.heappop(pending)[1])
        # a changed row's rowid may hold its new version, or (a deleted top row's) be reused
        again = store.rows_at(sorted({r[0] for r in gone if r[0] <= cursor.top} | set(due)))
        top = store.top_rowid()
    out = rules.fork()
    for row in gone:
        out.drop(*row)
    for row in expired:
        out.drop(*row[:7])
    _take(out, fresh, t, pending)
    _take(out, again, t, pending)
    return out, _Cursor(cursor.path, now, top, last, pending)


class _StoreRules:
    """Rule metadata read from the local store on a hit (a million rules held as objects
    would take a gigabyte); a small cache keeps repeat hits cheap.  Its own connection
    also reads the rows a build needs, through a small page cache: the rows are read
    once, in order, and a large cache would only hold on to memory."""

    def __init__(self, path: Path) -> None:
        self.store = LocalStore(path)
        self.store.conn.execute(f"PRAGMA cache_size=-{_PAGE_CACHE_KIB}")
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
_PAGE_CACHE_KIB = 4096


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
    ) -> None:
        """A matcher over ``indicators``; ``previous`` lends its compiled patterns (see
        ``from_store``)."""
        found = list(indicators)
        rules = _Rules(keys)
        for k, r in enumerate(found):
            rules.add(k, r.collab, r.key_epoch, r.form, r.value, r.canon, r.scheme)
        self._finish(rules, found.__getitem__, engine, previous)
        self._cursor: _Cursor | None = None

    @classmethod
    def from_store(
        cls,
        store: LocalStore,
        now: datetime | None = None,
        engine: str | None = None,
        previous: Matcher | None = None,
    ) -> Matcher:
        """A matcher over the indicators of ``store`` in force at ``now`` (default: the
        current time) and the store's collaboration keys.

        With ``previous`` (built from the same store) it applies only what changed since:
        rows written, replaced or deleted, and indicators expired or come into force, so
        the cost follows the change, not the store.  Its compiled base pattern set is
        reused, patterns added since go to a small delta set and revoked ones are masked;
        once the delta or the mask outgrows ``DELTA_MAX`` / ``mask_max``, every pattern is
        compiled again (the slow path: seconds at a million indicators)."""
        now = now or datetime.now(UTC)
        keys = {(c, e): s for c, e, s in store.collab_keys()}
        lookup = _StoreRules(store.path)
        reader = lookup.store
        m = cls.__new__(cls)
        cursor = previous._cursor if previous is not None else None
        step = None
        if (
            previous is not None
            and cursor is not None
            and cursor.path == store.path
            and previous._rules.keys == keys
            and now >= cursor.at
        ):
            with lookup.lock:
                step = _read_changes(reader, previous._rules, cursor, now)
        if step is None:
            with lookup.lock:
                step = _read_all(reader, keys, now)
            _trim_heap()
        m._finish(step[0], lookup, engine, previous)
        m._cursor = step[1]
        return m

    def _finish(
        self,
        rules: _Rules,
        lookup: Callable[[int], StoredIndicator | None],
        engine: str | None,
        previous: Matcher | None,
    ) -> None:
        self.engine = engine or ("hyperscan" if HAVE_HYPERSCAN else "re2")
        self._lookup = lookup
        self._rules = rules
        self.size = rules.size
        blinders = (
            {(b.key, b.canon.version, b.scheme): b for b, _ in previous._groups}
            if previous is not None
            else {}
        )
        self._groups: list[tuple[Blinder, Table]] = []
        for (c, e, canon, scheme), table in sorted(rules.tables.items()):
            if not table:  # an empty table would cost a scan its hashing for nothing
                continue
            key = CollabKey(c, e, rules.keys[(c, e)])
            blinder = blinders.get((key, canon, scheme))
            if blinder is None:
                try:
                    blinder = blinder_for(key, canon, scheme)
                except SighubError as exc:  # a pair this version does not know: unmatched
                    if (c, e, canon, scheme) not in rules._warned:  # once, not every reload
                        rules._warned.add((c, e, canon, scheme))
                        log.warning("rules of %s epoch %s cannot match: %s", c, e, exc)
                    continue
            self._groups.append((blinder, table))
        # Each canon version the blinded rules use, canon/1 first: a text is canonicalized
        # once under each, whatever the number of keys and schemes.
        self._canons = sorted({b.canon.version: b.canon for b, _ in self._groups}.items())
        reuse = previous._patterns if previous is not None else {}
        self._patterns: dict[str, _Patterns] = {
            v: _Patterns(rules.patterns.get(v, {}), self.engine, reuse.get(v))
            for v in CANON_VERSIONS
        }
        # The pattern sets that hold rules, with their canon: a text is folded once under
        # each canon version that blinded rules or patterns use.
        self._pattern_canons = [(canon_for(v), p) for v, p in self._patterns.items() if p.refs]
        used = {c.version: c for _, c in self._canons}
        used.update((c.version, c) for c, _ in self._pattern_canons)
        self._folds = sorted(used.items())

    def _rules_of(self, refs: Any, kind: str | None, value: str) -> list[StoredIndicator]:
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
        TextTooLong (``None``: no limit).  A pattern reports at most ``MAX_SPANS`` (1,000)
        spans per text, the first ones."""
        if max_chars is not None and len(text) > max_chars:
            raise TextTooLong(len(text), max_chars)
        out: list[tuple[int, int, StoredIndicator]] = []
        work = scalar(text)  # usually ``text`` itself
        # once per canon version, for its candidates and its patterns
        folds = {v: c.fold_fast(work) for v, c in self._folds}
        if self._groups:
            parts = {v: c.scan_parts(work, folds[v]) for v, c in self._canons}
            for blinder, table in self._groups:
                scanned = blinder.parts(work, *parts[blinder.canon.version])
                out.extend(self._blinded_hits(scanned, table))
        for canon, patterns in self._pattern_canons:
            out.extend(self._scan_patterns(patterns, canon, work, folds[canon.version]))
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
                rules = self._rules_of(table[digest], kind, digest.hex())
                out.extend((start, end, i) for i in rules)
        return out

    def _scan_patterns(
        self, sets: _Patterns, canon: Canon, work: str, folded_fast: str
    ) -> list[tuple[int, int, StoredIndicator]]:
        found = sets.scan(folded_fast)
        if not found:
            return []
        folded, src = canon.fold(work)  # the offset map, only for texts where a pattern fired
        out: list[tuple[int, int, StoredIndicator]] = []
        for patterns, k, refs in found:
            rules = self._rules_of(refs, None, patterns.sources[k])
            for s, e in patterns.spans(k, folded):
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
        against the old rule set meanwhile.  A rebuild applies only the changes since the
        last one (milliseconds for a few indicators); about once per ``DELTA_MAX`` added
        patterns it compiles every pattern again, which takes seconds at a million
        indicators (the slow path, still aside)."""
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
