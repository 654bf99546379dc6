"""Member-held keys against hub-made keys, same hub, same run (issue 11's "sync and match
throughput unchanged", and the unwrap p99 beside a baseline).

One hub, two collaborations of ``--indicators`` each, published from the same bundles'
shape: ``hub-keys`` (no steward: the hub makes its key, as before issue 11) and
``member-keys`` (a steward's client makes the epoch and wraps it; the hub holds only the
wraps).  A subscriber of each syncs into an empty local store, alternating, ``--rounds``
each: the ratio is member-keyed over hub-keyed.  Then each one's matcher scans the same
posts.  Last, ``_wraps.unwrap`` p99 beside the p99 of one Ed25519 verify in the same
loop, so that a loaded machine's scheduling shows as such.

Run: ``.venv/bin/python bench/bench_keysync.py [--indicators N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench._corpus import posts  # noqa: E402
from bench._timing import timings  # noqa: E402
from bench.bench_hub import PER_BUNDLE, Hub, _daemon_sync, _make_bundles, client  # noqa: E402
from bench.bench_machine import load, machine_line  # noqa: E402
from sighub.client._daemon import SyncDaemon  # noqa: E402
from sighub.client._hpke import EncryptionKey  # noqa: E402
from sighub.client._local import LOCAL_DB, LocalStore  # noqa: E402
from sighub.client._matcher import Matcher  # noqa: E402
from sighub.client._wraps import Recipient, new_secret, unwrap, wrap_epoch  # noqa: E402

HUB_KEYS, MEMBER_KEYS = "hub-keys", "member-keys"


def _publish(hub: Hub, pub: Path, collab: str, secret: bytes, epoch: int, total: int) -> None:
    bundles = max(1, total // PER_BUNDLE)
    jobs = [(str(pub), collab, secret, epoch, s, min(10, bundles - s), False)
            for s in range(0, bundles, 10)]  # fmt: skip
    c = client(pub, hub.address)
    # spawn: this process holds gRPC threads, which a forked child could inherit locked
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for batch in pool.imap(_make_bundles, jobs):
            for raw in batch:
                c.publish(collab, raw, timeout=300)
    c.close()


def _key(data: Path, collab: str) -> tuple[bytes, int]:
    store = LocalStore(data / LOCAL_DB)
    try:
        epoch, secret = max((e, s) for c, e, s in store.collab_keys() if c == collab)
    finally:
        store.close()
    return secret, epoch


def setup(hub: Hub, total: int) -> dict[str, Path]:
    """The publisher (steward of member-keys), a subscriber of each collaboration."""
    pub = hub.member("bench-pub", "publisher,subscriber", ())
    hub.admin(["collab", "add", HUB_KEYS])
    hub.admin(["collab", "join", HUB_KEYS, "bench-pub"])
    hub.admin(["collab", "add", MEMBER_KEYS, "--steward", "bench-pub"])
    subs = {c: hub.member(f"sub-{c}", "subscriber", (c,)) for c in (HUB_KEYS, MEMBER_KEYS)}
    daemon = SyncDaemon(pub, address=hub.address)
    try:
        daemon.rekey(MEMBER_KEYS)  # epoch 0, wrapped to the publisher and its subscriber
        daemon.sync_once()  # the hub-made key of hub-keys
    finally:
        daemon.close()
    for collab in (HUB_KEYS, MEMBER_KEYS):
        _publish(hub, pub, collab, *_key(pub, collab), total)
        print(f"  published {total:,} indicators into {collab}", flush=True)
    return subs


def bench_sync(hub: Hub, subs: dict[str, Path], rounds: int) -> dict[str, Path]:
    rates: dict[str, list[float]] = {c: [] for c in subs}
    for r in range(rounds):
        for collab, sub in subs.items():
            rate, _, applied, refused = _daemon_sync(hub, sub, True)
            assert refused == 0, f"{collab}: {refused} refused"
            rates[collab].append(rate)
            print(f"  round {r + 1}/{rounds} {collab}: {rate:,.0f} indicators/s ({applied:,})",
                  flush=True)  # fmt: skip
    hub_rate, member_rate = (statistics.median(rates[c]) for c in (HUB_KEYS, MEMBER_KEYS))
    print(
        f"verified sync, median of {rounds}: member-held keys {member_rate:,.0f}/s, hub-made"
        f" keys {hub_rate:,.0f}/s: ratio {member_rate / hub_rate:.2f} (unchanged: about"
        f" 1.00); best {max(rates[MEMBER_KEYS]) / max(rates[HUB_KEYS]):.2f}; {load()}"
    )
    return subs


def bench_match(subs: dict[str, Path], rounds: int) -> None:
    texts = posts(2_000, 1_000)
    matchers = {}
    for collab, sub in subs.items():
        store = LocalStore(sub / LOCAL_DB)
        matchers[collab] = Matcher.from_store(store)
        store.close()
    rates: dict[str, list[float]] = {c: [] for c in subs}
    for _ in range(rounds):
        for collab, m in matchers.items():
            start = time.perf_counter()
            for t in texts:
                m.scan(t)
            rates[collab].append(len(texts) / (time.perf_counter() - start))
    hub_rate, member_rate = (statistics.median(rates[c]) for c in (HUB_KEYS, MEMBER_KEYS))
    print(
        f"match, 1 KB texts, median of {rounds}: member-held keys {member_rate:,.0f}/s,"
        f" hub-made keys {hub_rate:,.0f}/s: ratio {member_rate / hub_rate:.2f}; {load()}"
    )


def bench_unwrap(count: int) -> None:
    steward = Ed25519PrivateKey.generate()
    public = steward.public_key().public_bytes_raw()
    key = EncryptionKey.generate()
    secret = new_secret()
    (w,) = wrap_epoch(steward, "stew", MEMBER_KEYS, 0, secret, [Recipient("m", key.suite,
                      key.public)])  # fmt: skip
    message, signature = b"baseline", steward.sign(b"baseline")
    verify = steward.public_key().verify
    opened = timings(count, lambda: unwrap(w, "m", key, lambda s, k: public))
    base = timings(count, lambda: verify(signature, message))
    p = int(count * 0.99)
    print(
        f"unwrap ({key.suite}), {count:,} calls: p50 {opened[count // 2]:.3f} ms, p99"
        f" {opened[p]:.3f} ms (target <= 5 ms: {'meets' if opened[p] <= 5 else 'ABOVE'});"
        f" same-run baseline Ed25519 verify p50 {base[count // 2]:.3f} ms, p99"
        f" {base[p]:.3f} ms; {load()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--indicators", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--unwraps", type=int, default=5_000)
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="sighub-bench-") as tmp:
        hub = Hub(Path(tmp))
        try:
            subs = setup(hub, args.indicators)
            bench_sync(hub, subs, args.rounds)
            bench_match(subs, args.rounds)
        finally:
            hub.stop()
    bench_unwrap(args.unwraps)


if __name__ == "__main__":
    main()
