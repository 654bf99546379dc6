"""The member's matcher: scan throughput and reload time with synthetic rule sets.

Targets (issue 4): with 100,000 indicators (60% keywords and hashtags, 20% emoji, 10% URLs,
10% patterns), one core: >= 2,000 texts/s for 1 KB texts, >= 6,000 texts/s for 280-byte
posts; reload with 100,000 <= 2 s.  Memory (process RSS) and reloads after a pattern
change: ``bench/bench_reload.py``.  Run: ``.venv/bin/python bench/bench_client.py
[--canon 1|2|both]``: the indicators under canon/1 (the default), canon/2, or half under
each (both canons in force during a migration; a pattern runs over the text its canon
version folds).  Issue
13's targets: canon/2 alone as above, both >= 1,500 / >= 4,500 texts/s.  ``--ratios``
builds all three and scans with each in turn, round after round, so that a loaded or
slower machine is judged by ratios to canon/1 alone in the same run: canon/2 alone
>= 1.0x, both >= 0.75x (the issue's targets over canon/1's).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._corpus
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

from bench._corpus import posts
from sighub import Form, Indicator, Kind, Matcher, Publisher
from sighub.client._local import LocalStore
from sighub.client._matcher import HAVE_HYPERSCAN
from sighub.wire import Blinder, CollabKey, now_ms

KEY = CollabKey("sg-csam", 0, bytes(range(32)))
PUB = Publisher("identity--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "platform-a")
_EMOJI = ["🧀", "🍕", "🗺️", "🌽", "🍪", "✨", "🔥", "🍒", "🎀", "💌", "🧁", "🍓"]


def _value(kind: Kind, i: int, rng: random.Random) -> str:
    if kind is Kind.KEYWORD:
        return f"s3ll{i} menu{rng.randrange(999)}" if i % 3 else f"word{i}"
    if kind is Kind.HASHTAG:
        return f"#tag{i}"
    if kind is Kind.EMOJI:  # a distinct code per indicator, two or three pictographs
        first, second = divmod(i, 200)
        code = chr(0x1F300 + first % 200) + chr(0x1F400 + second % 200)
        return code + (rng.choice(_EMOJI) if i % 2 else "")
    return f"menu{i}.carrd.co/p{i % 97}"


def _pattern(i: int) -> str:
    return f"code{i}x[a-z0-9]{{4}}-[a-z0-9]{{4}}"


def indicators(n: int, canon: str = "1") -> list[Indicator]:
    rng = random.Random(n)
    blinders = {v: Blinder(KEY, f"canon/{v}") for v in ("1", "2")}
    now = now_ms()
    out = []
    for i in range(n):
        r = i % 10
        kind = [Kind.KEYWORD] * 4 + [Kind.HASHTAG] * 2 + [Kind.EMOJI] * 2 + [Kind.URL, Kind.PAYMENT]
        kind_i = kind[r]
        pattern = kind_i is Kind.PAYMENT
        version = canon if canon != "both" else "12"[i // 10 % 2]
        blinder = blinders[version]
        value = _pattern(i) if pattern else blinder.value(kind_i, _value(kind_i, i, rng))
        out.append(
            Indicator(
                id=f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                kind=kind_i,
                form=Form.PATTERN if pattern else Form.BLINDED,
                value=value,
                collaboration="sg-csam",
                publisher=PUB,
                valid_from=now,
                valid_until=now + timedelta(days=30),
                created=now,
                modified=now,
                key_epoch=None if pattern else 0,
                canon_version=blinder.canon.version,
                scheme=None if pattern else "blake2b-128",
                confidence=60,
                labels=("bench",),
                description="synthetic benchmark indicator",
            )
        )
    return out


def store_with(n: int, folder: Path, canon: str = "1") -> LocalStore:
    store = LocalStore(folder / "local.db")
    with store.tx() as c:
        store.upsert(c, [store.row(i, 1) for i in indicators(n, canon)])
    store.replace_directory([], [(KEY.collaboration, KEY.epoch, KEY.secret)])
    return store


def throughput(matcher: Matcher, size: int, count: int, target: float) -> None:
    texts = posts(count, size, seed=size + 1)
    for t in texts[: count // 10]:
        matcher.scan(t)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for t in texts:
            matcher.scan(t)
        rates.append(count / (time.perf_counter() - start))
    rate = statistics.median(rates)
    print(f"  {size:>5} B texts: {rate:8.0f} texts/s (median of 3)  target {target:,.0f}: "
          f"{'meets' if rate >= target else 'BELOW'}")  # fmt: skip


_RATIO_FLOOR = {"2": 1.0, "both": 0.75}
_CHUNK = 500


def ratios(n: int = 100_000, rounds: int = 5) -> None:
    """Each canon setting's scan rate over canon/1's, alternating settings every round so
    that load on a shared machine falls on all of them alike."""
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        matchers = {}
        for canon in ("1", "2", "both"):
            folder = Path(tmp) / canon
            folder.mkdir()
            store = store_with(n, folder, canon)
            matchers[canon] = Matcher.from_store(store)
            store.close()
        for size, count in ((1024, 2000), (280, 6000)):
            texts = posts(count, size, seed=size + 1)
            for m in matchers.values():
                for t in texts[: count // 10]:
                    m.scan(t)
            rates: dict[str, list[float]] = {c: [] for c in matchers}
            for _ in range(rounds):
                spent = dict.fromkeys(matchers, 0.0)
                # The settings take turns every _CHUNK texts: this machine's speed drifts
                # over seconds, and each setting then sees the same drift.
                for at in range(0, count, _CHUNK):
                    chunk = texts[at : at + _CHUNK]
                    for canon, m in matchers.items():
                        start = time.perf_counter()
                        for t in chunk:
                            m.scan(t)
                        spent[canon] += time.perf_counter() - start
                for canon in matchers:
                    rates[canon].append(count / spent[canon])
            rate = {c: statistics.median(r) for c, r in rates.items()}
            shown = ", ".join(f"canon {c} {r:,.0f}/s" for c, r in rate.items())
            print(f"  {size:>5} B texts, median of {rounds} rounds, settings alternating "
                  f"every {_CHUNK} texts: {shown}")  # fmt: skip
            for canon, floor in _RATIO_FLOOR.items():
                ratio = rate[canon] / rate["1"]
                verdict = "meets" if ratio >= floor else "BELOW"
                print(f"    canon {canon} / canon 1: {ratio:.2f}x  target >= {floor}x: {verdict}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--canon", choices=["1", "2", "both"], default="1")
    ap.add_argument("--ratios", action="store_true", help="canon 2 and both over canon 1")
    args = ap.parse_args()
    canon = args.canon
    engine = "hyperscan" if HAVE_HYPERSCAN else "re2"
    print(f"python {platform.python_version()} on {platform.machine()}; pattern engine {engine}")
    if args.ratios:
        ratios()
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = store_with(100_000, Path(tmp), canon)
        start = time.perf_counter()
        matcher = Matcher.from_store(store)
        cold = time.perf_counter() - start
        print(f"cold build from the local store, 100,000 indicators: {cold:.2f} s")
        with store.tx() as c:  # a sync lands 1,000 new blinded indicators
            fresh = [i for i in indicators(101_000, canon)[100_000:] if i.form is Form.BLINDED]
            store.upsert(c, [store.row(i, 2) for i in fresh])
        start = time.perf_counter()
        matcher = Matcher.from_store(store, previous=matcher)
        reload_s = time.perf_counter() - start
        verdict = "meets" if reload_s <= 2 else "ABOVE"
        print(f"reload after a sync (pattern set unchanged), {100_000 + len(fresh):,} "
              f"indicators: {reload_s:.2f} s  target <= 2: {verdict}")  # fmt: skip
        both = canon == "both"
        print(f"matcher with 100,000 indicators (canon {canon}), one core:")
        throughput(matcher, 1024, 2000, 1500 if both else 2000)
        throughput(matcher, 280, 6000, 4500 if both else 6000)
        store.close()


if __name__ == "__main__":
    main()
