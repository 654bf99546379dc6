"""The matcher beside a plaintext literal matcher, and on texts it has never seen.

1. Ratio: sighub's ``Matcher`` (blinded keyword indicators: every text canonicalized, every
   word and phrase of up to four words hashed with the collaboration key, looked up) and
   ``pyahocorasick`` (an Aho-Corasick automaton over the same keywords in plaintext, run
   over the lowercased text, every match reported) scan the same 1 KB texts of the
   standard corpus; rounds alternate between the two, and the figure is the ratio of their
   median texts/s.  The ratio is recorded, not judged: the reference knows the keywords in
   clear and does no canonicalization, which is what blinding costs.
2. Unseen texts: canonicalize + extract + blind (``Blinder.text``) and the matcher, over
   texts drawn from a 500,000-word vocabulary, each measured text scanned once.  Cold: the
   word caches empty (a fresh process, or a matcher just rebuilt); warm: the caches filled
   by other texts of the same vocabulary, as in a long-running matcher.  Rounds alternate.

Run: ``.venv/bin/python bench/bench_match.py [--million] [--quick]`` (needs
``pip install -e '.[bench]'`` for pyahocorasick).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._corpus
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

import ahocorasick

from bench._corpus import posts, vocabulary
from bench.bench_client import KEY, PUB
from bench.bench_machine import load, machine_line
from sighub.client._blind import Blinder
from sighub.client._canon import _text, _url
from sighub.client._local import LocalStore
from sighub.client._matcher import Matcher
from sighub.client._model import Form, Indicator, Kind, now_ms

STANDARD_SEED = 1025  # bench_client's 1 KB texts


def keywords(words: list[str], n: int, seed: int) -> list[str]:
    """``n`` distinct keywords over ``words`` (most frequent first): one in a hundred a
    single word past the 5,000 most frequent, the rest phrases of two or three words past
    the 1,000 most frequent, so that most texts fire once or not at all, as a rule set of
    specific terms does."""
    rng = random.Random(seed)
    first: dict[str, int] = {}
    for rank, word in enumerate(words):  # a word may repeat: its rank is its first one
        first.setdefault(word, rank)
    rare = [w for w, rank in first.items() if rank >= 5000]
    rng.shuffle(rare)
    out = dict.fromkeys(rare[: n // 100])
    tail = [w for w, rank in first.items() if rank >= 1000]
    while len(out) < n:
        out[" ".join(rng.choices(tail, k=rng.choice((2, 3))))] = None
    return list(out)


def keyword_store(folder: Path, kws: list[str]) -> LocalStore:
    """A local store holding one blinded keyword indicator per keyword."""
    blinder = Blinder(KEY)
    now = now_ms()
    rng = random.Random(len(kws))
    store = LocalStore(folder / "local.db")
    for start in range(0, len(kws), 50_000):
        rows = [
            LocalStore.row(
                Indicator(
                    id=f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                    kind=Kind.KEYWORD,
                    form=Form.BLINDED,
                    value=blinder.value(Kind.KEYWORD, kw),
                    collaboration=KEY.collaboration,
                    publisher=PUB,
                    valid_from=now,
                    valid_until=now + timedelta(days=30),
                    created=now,
                    modified=now,
                    key_epoch=KEY.epoch,
                    scheme="blake2b-128",
                    confidence=60,
                    labels=("bench",),
                    description="synthetic benchmark indicator",
                ),
                1,
            )
            for kw in kws[start : start + 50_000]
        ]
        with store.tx() as c:
            store.upsert(c, rows)
    store.replace_directory([], [(KEY.collaboration, KEY.epoch, KEY.secret)])
    return store


def automaton(kws: list[str]) -> ahocorasick.Automaton:
    a = ahocorasick.Automaton()
    for k, kw in enumerate(kws):
        a.add_word(kw, k)
    a.make_automaton()
    return a


def _rate(scan: Callable[[str], int], texts: list[str]) -> tuple[float, int]:
    """(texts/s, matches) of one pass."""
    found = 0
    start = time.perf_counter()
    for t in texts:
        found += scan(t)
    return len(texts) / (time.perf_counter() - start), found


def ratio(size: int, texts: list[str], folder: Path, rounds: int) -> None:
    kws = keywords(vocabulary(20_000, STANDARD_SEED), size, seed=size)
    start = time.perf_counter()
    store = keyword_store(folder, kws)
    matcher = Matcher.from_store(store)
    built = time.perf_counter() - start
    start = time.perf_counter()
    aho = automaton(kws)
    aho_built = time.perf_counter() - start

    def ours(t: str) -> int:
        return len(matcher.scan(t))

    def theirs(t: str) -> int:
        return sum(1 for _ in aho.iter(t.lower()))

    for t in texts[: len(texts) // 10]:  # warm-up, both
        ours(t)
        theirs(t)
    rates: dict[str, list[float]] = {"ours": [], "theirs": []}
    found = {"ours": 0, "theirs": 0}
    for _ in range(rounds):
        for name, scan in (("ours", ours), ("theirs", theirs)):
            rate, found[name] = _rate(scan, texts)
            rates[name].append(rate)
    a, b = statistics.median(rates["ours"]), statistics.median(rates["theirs"])
    print(f"  {size:>9,} keywords: sighub {a:8,.0f} texts/s, pyahocorasick {b:9,.0f} texts/s: "
          f"ratio {a / b:.3f}; matches/text {found['ours'] / len(texts):.1f} / "
          f"{found['theirs'] / len(texts):.1f}; built in {built:.1f} s / {aho_built:.1f} s; "
          f"{load()}", flush=True)  # fmt: skip
    store.close()


def _cold_caches() -> None:
    """Empty the canonicalizer's module caches, as in a process that just started."""
    _text._token_cache.clear()
    _url._relative_cached.cache_clear()


def unseen(vocab: int, count: int, rounds: int, size: int, folder: Path) -> None:
    """Cold and warm figures on texts never scanned before, from a ``vocab``-word
    vocabulary: each round takes texts no earlier round saw."""
    texts = posts(count * (2 * rounds + 1), 1024, seed=vocab, vocab=vocab)
    fresh = iter(texts[i : i + count] for i in range(0, len(texts), count))
    filler = next(fresh)  # the warm caches' history
    store = keyword_store(folder, keywords(vocabulary(vocab, vocab), size, seed=vocab))
    matcher = Matcher.from_store(store)

    def canon(cold: bool) -> float:
        nonlocal blinder
        if cold:
            _cold_caches()
            blinder = Blinder(KEY)
        else:
            for t in filler:
                blinder.text(t)
        return _rate(lambda t: len(blinder.text(t).digests), next(fresh))[0]

    def match(cold: bool) -> float:
        nonlocal matcher
        if cold:
            _cold_caches()
            matcher = Matcher.from_store(store)  # new blinders, empty word caches
        else:
            for t in filler:
                matcher.scan(t)
        return _rate(lambda t: len(matcher.scan(t)), next(fresh))[0]

    blinder = Blinder(KEY)
    print(f"texts never seen before, {vocab:,}-word vocabulary, 1 KB, one core ({count:,} "
          f"texts a round, median of {rounds // 2} alternating rounds each):")  # fmt: skip
    for name, measure in (
        ("canonicalize + extract + blind", canon),
        (f"matcher, {size:,} keywords", match),
    ):
        cold, warm = [], []
        for r in range(rounds):
            (cold if r % 2 == 0 else warm).append(measure(r % 2 == 0))
        c, w = statistics.median(cold), statistics.median(warm)
        print(f"  {name:<32} cold {c:7,.0f} texts/s, warm {w:7,.0f} texts/s "
              f"(cold/warm {c / w:.2f}); {load()}", flush=True)  # fmt: skip
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--million", action="store_true", help="also 1,000,000 keywords")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = ap.parse_args()
    sizes = [1_000] if args.quick else [10_000, 100_000] + ([1_000_000] if args.million else [])
    count, rounds = (40, 1) if args.quick else (1_000, 3)
    print(f"machine: {machine_line()}")
    texts = posts(count, 1024, seed=STANDARD_SEED)
    print(f"matcher / plaintext literal matcher (pyahocorasick), {count:,} 1 KB texts, one core, "
          f"median of {rounds} alternating rounds:", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / f"k{n}"
            folder.mkdir()
            ratio(n, texts, folder, rounds)
        folder = Path(tmp) / "unseen"
        folder.mkdir()
        if args.quick:
            unseen(30_000, 20, 2, 1_000, folder)
        else:
            unseen(500_000, 500, 6, 100_000, folder)


if __name__ == "__main__":
    main()
