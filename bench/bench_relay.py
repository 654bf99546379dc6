"""Federation benchmarks (issue 12): relays inside ``sighub hub serve`` on real hub processes,
over gRPC and mTLS on 127.0.0.1, each figure beside a same-run baseline.

Targets:
- catch-up: a new peering relays a peer's 1,000,000 indicators (bundles of 1,000) at
  >= 100,000 indicators/s; baseline: a member daemon's verified sync of the same from the
  same hub into a fresh local store;
- live push over two hops: publish on hub A, received by the followers on hub C (C follows
  B follows A), 10 followers per hub: p99 <= 100 ms from the publish call; baseline: the
  one-hop figure of the same publishes (A's own followers);
- relay memory: the following hub's RSS after relaying 1,000,000 <= 200 MB; baseline: the
  same hub's RSS before the peering.

Run: ``.venv/bin/python bench/bench_relay.py [--size 1000000]`` (``make bench-relay``).  Needs
about 1.5 GB of temporary disk at a million.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.bench_hub import (  # noqa: E402
    WORKERS,
    Hub,
    _children,
    _daemon_sync,
    _keyword,
    bench_publish,
    client,
    prepare,
)
from bench.bench_machine import load, machine_line  # noqa: E402
from sighub.client._daemon import SyncDaemon  # noqa: E402
from sighub.client._keys import MemberFiles  # noqa: E402
from sighub.client._local import StoredIndicator  # noqa: E402
from sighub.client._rpc import HubClient  # noqa: E402
from sighub.hub._cli import main as sighub  # noqa: E402
from sighub.hub._process import start_hub  # noqa: E402
from sighub.wire import Blinder, CollabKey, build_bundle, seal  # noqa: E402

COLLAB = "sg-csam"


class FedHub(Hub):
    """A named hub (its name is its log origin, which the hop records carry) whose log goes
    to a file: a relay logs every batch, and a pipe nobody reads would fill."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        root.mkdir(parents=True)
        with contextlib.redirect_stdout(io.StringIO()):
            sighub(["hub", "init", "--data", str(root / "hub"), "--name", name])
        cfg = root / "hub" / "hub.toml"
        text = cfg.read_text().replace(
            "publishes_per_minute = 120", "publishes_per_minute = 600000"
        )
        text = text.replace("validation_workers = 1", f"validation_workers = {WORKERS}")
        cfg.write_text(text.replace("burst = 30", "burst = 100000"))
        self.log = (root / "hub.log").open("a")
        self.proc, self.address = start_hub(root / "hub", stderr=self.log)
        self.admin(["collab", "add", COLLAB])

    def admin(self, args: list[str]) -> None:
        """An admin command, its output (JSON of every member made) shown only if it fails."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = sighub(["admin", "--cred", str(self.root / "hub" / "admin"),
                           "--hub", self.address, *args])  # fmt: skip
        if code != 0:
            raise SystemExit(f"{self.name}: admin {args} failed ({code}): {out.getvalue()}")

    def follow(self, peer: FedHub) -> float:
        """This hub peers with ``peer`` (direction pull, ``COLLAB`` mapped to itself), the
        way an operator does it; returns the time the ``peer add`` call started."""
        member = f"hub-{self.name}"
        path = self.root / f"{peer.name}-{member}.enroll.json"
        peer.admin(["member", "add", member, "--roles", "peer", "--out", str(path)])
        peer.admin(["collab", "join", COLLAB, member])
        start = time.perf_counter()
        self.admin(["peer", "add", peer.name, "--enrollment", str(path),
                    "--map", f"{COLLAB}={COLLAB}", "--max-hops", "4"])  # fmt: skip
        return start

    def push_to(self, receiver: FedHub) -> None:
        """This hub pushes to ``receiver``, which does not dial it (``hub._tunnel``): the
        receiver's relay pulls this hub's log through the tunnel this hub opens."""
        dialer = self.root / f"{receiver.name}-{self.name}.dialer.json"
        receiver.admin(["member", "add", self.name, "--roles", "peer", "--out", str(dialer)])
        self.admin(["peer", "add", receiver.name, "--enrollment", str(dialer),
                    "--map", f"{COLLAB}={COLLAB}", "--direction", "push"])  # fmt: skip
        member = f"hub-{receiver.name}"
        path = self.root / f"{self.name}-{member}.enroll.json"
        self.admin(["member", "add", member, "--roles", "peer", "--out", str(path)])
        self.admin(["collab", "join", COLLAB, member])
        receiver.admin(["peer", "add", self.name, "--enrollment", str(path), "--map",
                        f"{COLLAB}={COLLAB}", "--max-hops", "4", "--dial-in"])  # fmt: skip

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.root / 'hub' / 'hub.db'}?mode=ro", uri=True)

    def relay_counts(self, peer: str) -> dict[str, int]:
        with self.db() as c:
            rows = c.execute("SELECT outcome, count FROM relay_counts WHERE peer=?", (peer,))
            return {str(k): int(v) for k, v in rows.fetchall()}

    def stop(self) -> None:
        super().stop()
        self.log.close()


def memory(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of one process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(line.split()[1])
    return out


def _mb(kib: float) -> str:
    return f"{kib / 1024:.0f} MB"


def catch_up(tmp: Path, size: int, connections: int, profile: Path | None) -> None:
    """Hub A holds ``size`` indicators; a member daemon of A syncs them all (the baseline),
    then hub B peers with A and its relay takes them all (with ``profile``, sampled by
    py-spy, hub B and its worker processes, into that file: collapsed stacks)."""
    a = FedHub(tmp / "a", "industry")
    b = FedHub(tmp / "b", "regional")
    try:
        pub = a.member("bench-pub", "publisher,subscriber")
        sub = a.member("bench-sub", "subscriber")
        paths = prepare(pub, a, size, tmp / "bundles")
        bench_publish(a, pub, paths, connections)
        rate, _, applied, refused = _daemon_sync(a, sub, check_log=True)
        print(f"baseline: member daemon's verified sync from A into a fresh local store: "
              f"{rate:,.0f} indicators/s ({applied:,} applied, {refused} refused); {load()}",
              flush=True)  # fmt: skip
        relay_rate = _relay_catch_up(a, b, size, len(paths), profile)
        print(f"catch-up relay / member daemon's verified sync: {relay_rate:,.0f} / {rate:,.0f}"
              f" indicators/s, ratio {relay_rate / rate:.2f}")  # fmt: skip
        if profile is not None:
            where_time_goes(profile)
    finally:
        b.stop()
        a.stop()


def _relay_catch_up(a: FedHub, b: FedHub, size: int, envelopes: int, profile: Path | None) -> float:
    """B peers with A; the time until B's relay counted every envelope of A, polled in B's
    database, and B's memory before and after.  Returns indicators/s."""
    time.sleep(2.0)  # B idle: its memory before the peering
    before, before_all = memory(b.proc.pid), b.rss_mb()
    peak_all = [before_all]
    spy = None
    if profile is not None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        spy = subprocess.Popen([exe, "record", "--pid", str(b.proc.pid), "--subprocesses",
                                "--idle", "--threads", "--format", "raw", "--rate", "50",
                                "--output", str(profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(1.0)  # attached
    start = b.follow(a)
    first = 0.0
    deadline = time.perf_counter() + max(600.0, size / 1000)
    while True:
        got = b.relay_counts(a.name)
        done = sum(v for k, v in got.items() if k not in ("copied", "duplicate-copy"))
        if got.get("relayed") and not first:
            first = time.perf_counter() - start
        if done >= envelopes:
            break
        if time.perf_counter() > deadline or b.proc.poll() is not None:
            raise SystemExit(f"the relay did not catch up: {got} of {envelopes} envelopes")
        peak_all.append(b.rss_mb())
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)
    with b.db() as c:
        stored = int(c.execute("SELECT COUNT(*) FROM indicators").fetchone()[0])
    rate = size / elapsed
    print(
        f"catch-up: relay of a new peering took {size:,} indicators ({envelopes:,} "
        f"envelopes; outcomes {got}; {stored:,} indicators stored at B) in {elapsed:.1f} s "
        f"(first envelope relayed {first:.1f} s after `peer add`): {rate:,.0f} "
        f"indicators/s  target >= 100,000: {'meets' if rate >= 100_000 else 'BELOW'}; {load()}"
    )
    after, after_all = memory(b.proc.pid), b.rss_mb()
    print(
        f"relay memory: hub B's process after relaying {size:,}: VmHWM {_mb(after['VmHWM'])}"
        f", VmRSS {_mb(after['VmRSS'])}; before the peering VmHWM {_mb(before['VmHWM'])}, "
        f"VmRSS {_mb(before['VmRSS'])}; increase of VmHWM "
        f"{_mb(after['VmHWM'] - before['VmHWM'])}  target <= 200 MB: "
        f"{'meets' if after['VmHWM'] <= 200 * 1024 else 'ABOVE'}"
    )
    print(
        f"  with its children (validation and the relay's verification workers, "
        f"{len(_children(b.proc.pid))} now): peak {max(peak_all):.0f} MB of summed RSS "
        f"during the catch-up, {after_all:.0f} MB after, {before_all:.0f} MB before"
    )
    return rate


def where_time_goes(profile: Path, top: int = 8) -> None:
    """From py-spy's collapsed stacks: for the relay's thread and the hub's writer, the
    share of samples by the innermost sighub function of each (a lock or condition wait
    counted apart as waiting: the relay for the writer, the writer for work)."""
    threads: dict[str, Counter[str]] = {}
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        name = frames[1].split(": ", 1)[-1] if len(frames) > 2 else ""
        if not (name.startswith("relay-") or name == "sighub-writer"):
            continue
        ours = [f for f in frames[2:] if "sighub/" in f]
        leaf = frames[-1].split(" (")[0]
        where = "waiting" if leaf in ("Condition.wait", "Lock.acquire") else "other"
        if ours and where != "waiting":
            fn, _, at = ours[-1].partition(" (")
            where = f"{fn} ({at.rstrip(')').rsplit('/', 1)[-1]})"
        threads.setdefault(name, Counter())[where] += int(n)
    for name, counter in sorted(threads.items()):
        total = sum(counter.values())
        shares = "; ".join(f"{fn} {n / total:.0%}" for fn, n in counter.most_common(top))
        print(f"  py-spy, thread {name} ({total} samples): {shares}")


class _Arrivals:
    """What each follower received and when: envelope id -> times, per hub; and, for the
    member daemon on C, indicator id -> the time its sink was told."""

    def __init__(self, hubs: list[FedHub]) -> None:
        self.lock = threading.Lock()
        self.streams: dict[str, dict[str, list[float]]] = {h.name: {} for h in hubs}
        self.daemon: dict[str, float] = {}

    def upsert(self, indicators: Sequence[StoredIndicator]) -> None:
        now = time.perf_counter()
        with self.lock:
            for ind in indicators:
                self.daemon.setdefault(ind.id, now)

    def remove(self, ids: Sequence[str]) -> None:
        return


def live_push(tmp: Path, samples: int, followers: int, tunnel: bool = False) -> None:
    """C follows B follows A; ``followers`` Sync streams per hub, and a member daemon on C
    (every envelope verified, two hops from its publisher, into its local store, told to
    its sink).  Each probe published on A is timed from its publish call to its arrival
    at each follower of A (the baseline), of B (one relay), of C (two relays) and at the
    daemon's sink.  With ``tunnel``, B pushes to C (C's relay pulls B through B's tunnel)."""
    if tunnel:
        print("second hop: regional pushes to hotline, whose relay pulls through the tunnel")
    hubs = [FedHub(tmp / n, n) for n in ("industry", "regional", "hotline")]
    streams: list[HubClient] = []
    stop = threading.Event()
    daemon, follower = None, None
    try:
        pub = hubs[0].member("bench-pub", "publisher,subscriber")
        hubs[1].follow(hubs[0])
        if tunnel:
            hubs[1].push_to(hubs[2])
        else:
            hubs[2].follow(hubs[1])
        got = _Arrivals(hubs)

        def listen(hub: FedHub, data: Path) -> None:
            cl = client(data, hub.address)
            streams.append(cl)
            try:
                for batch in cl.sync(0, follow=True):
                    now = time.perf_counter()
                    with got.lock:
                        for ch in batch.changes:
                            eid = hashlib.sha256(ch.envelope).hexdigest()
                            got.streams[hub.name].setdefault(eid, []).append(now)
            except Exception:  # the stream ends when the benchmark closes it
                return

        for hub in hubs:
            for i in range(followers):
                data = hub.member(f"follower-{i}", "subscriber")
                threading.Thread(target=listen, args=(hub, data), daemon=True).start()
        data = hubs[2].member("daemon-c", "subscriber")
        daemon = SyncDaemon(data, address=hubs[2].address, sinks=[got], workers=0)
        follower = threading.Thread(target=daemon.follow, args=(stop,), daemon=True)
        follower.start()

        def reached(eid: str, indicator: str) -> bool:
            with got.lock:
                return indicator in got.daemon and all(
                    len(got.streams[h.name].get(eid, [])) == followers for h in hubs
                )

        sent = _probes(hubs[0], pub, samples, reached)
        _report_push(hubs, sent, got, followers)
    finally:
        stop.set()
        if daemon is not None:
            daemon.interrupt()
        for s in streams:
            s.close()
        if follower is not None:
            follower.join(30)
        for hub in reversed(hubs):
            hub.stop()
        if daemon is not None:
            daemon.close()


def _probes(
    a: FedHub, pub: Path, samples: int, reached: Callable[[str, str], bool]
) -> dict[tuple[str, str], float]:
    """A warm-up envelope until every follower has it (both relays connected, every stream
    open), then ``samples`` probes 50 ms apart: (envelope id, indicator id) -> time of the
    publish call."""
    publisher = client(pub, a.address)
    k = max((k for k in publisher.collab_keys() if k.collaboration == COLLAB),
            key=lambda k: k.epoch)  # fmt: skip
    files = MemberFiles(pub)
    ident, key = files.identity(), files.signing_key()
    blinder = Blinder(CollabKey(COLLAB, k.epoch, k.secret))

    def probe(word: str) -> tuple[bytes, tuple[str, str]]:
        ind = _keyword(ident, blinder, word, 1)
        raw = seal(build_bundle(ident.publisher, [ind]), key)
        return raw, (hashlib.sha256(raw).hexdigest(), ind.id)

    raw, ids = probe("warm-up")
    publisher.publish(COLLAB, raw)
    deadline = time.perf_counter() + 120
    while not reached(*ids):
        if time.perf_counter() > deadline:
            raise SystemExit("the warm-up envelope did not reach every follower")
        time.sleep(0.05)
    sent: dict[tuple[str, str], float] = {}
    for r in range(samples):
        raw, ids = probe(f"push {r}")
        t0 = time.perf_counter()
        publisher.publish(COLLAB, raw)
        sent[ids] = t0
        time.sleep(0.05)
    deadline = time.perf_counter() + 30
    while not all(reached(*ids) for ids in sent) and time.perf_counter() < deadline:
        time.sleep(0.1)
    publisher.close()
    return sent


def _latencies(sent: dict[tuple[str, str], float], times: Callable[[str, str], list[float]],
               expected: int, what: str) -> tuple[float, float, int]:  # fmt: skip
    """(p50, p99 in ms from the publish call, deliveries missing), printed as ``what``."""
    got, missing = [], 0
    for (eid, indicator), t0 in sent.items():
        arrived = times(eid, indicator)
        missing += expected - len(arrived)
        got += [(t - t0) * 1000 for t in arrived]
    if len(got) < 2:
        raise SystemExit(f"live push: too few deliveries, {what} ({len(got)})")
    p50, p99 = statistics.median(got), statistics.quantiles(got, n=100)[98]
    print(f"live push A -> {what}, {len(sent)} publishes: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
          f"from the publish call; {missing} deliveries missing; {load()}")  # fmt: skip
    return p50, p99, missing


def _report_push(hubs: list[FedHub], sent: dict[tuple[str, str], float], got: _Arrivals,
                 followers: int) -> None:  # fmt: skip
    figures = {}
    for hub, hops in zip(hubs, ("own followers", "one relay", "two relays"), strict=True):
        streams = got.streams[hub.name]
        what = f"{hub.name} ({hops}), {followers} followers"
        figures[hub.name] = _latencies(sent, lambda e, _, s=streams: s.get(e, []), followers, what)
    what = f"{hubs[2].name}'s member daemon (two relays; verified, stored, told its sink)"
    daemon = _latencies(sent, lambda _, i: [got.daemon[i]] if i in got.daemon else [], 1, what)
    base50, base99, _ = figures[hubs[0].name]
    for what, (p50, p99, missing) in (("followers", figures[hubs[2].name]), ("daemon", daemon)):
        ok = p99 <= 100 and missing == 0
        print(
            f"live push over two hops ({hubs[2].name}'s {what}) / no relay (A's own followers): "
            f"p99 {p99:.0f} / {base99:.0f} ms, ratio {p99 / base99:.1f}; p50 {p50:.0f} / "
            f"{base50:.0f} ms, ratio {p50 / base50:.1f}  target p99 <= 100 ms: "
            f"{'meets' if ok else 'ABOVE'}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1_000_000, help="indicators hub A holds")
    ap.add_argument("--connections", type=int, default=4, help="to publish them")
    ap.add_argument("--push-samples", type=int, default=200)
    ap.add_argument("--followers", type=int, default=10, help="per hub, for the live push")
    ap.add_argument("--dir", type=Path, default=None, help="for the temporary hubs")
    ap.add_argument("--py-spy", type=Path, default=None, metavar="FILE",
                    help="sample hub B during the catch-up with py-spy (pip install py-spy) into "
                    "FILE, collapsed stacks per thread")  # fmt: skip
    ap.add_argument("--no-push", action="store_true", help="the catch-up and memory only")
    ap.add_argument("--no-catch-up", action="store_true", help="the live push only")
    ap.add_argument("--tunnel", action="store_true",
                    help="the live push again with the second hop a push (through a tunnel),"
                    " beside the direct one in the same run")  # fmt: skip
    args = ap.parse_args()
    print(f"machine: {machine_line()}; each hub in its own process; "
          f"{os.cpu_count()} cores shared by all of them and this script")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sighub-bench-relay-", dir=args.dir) as tmp:
        if not args.no_catch_up:
            catch_up(Path(tmp) / "catch-up", args.size, args.connections, args.py_spy)
        if not args.no_push:
            live_push(Path(tmp) / "push", args.push_samples, args.followers)
        if args.tunnel:
            live_push(Path(tmp) / "tunnel", args.push_samples, args.followers, tunnel=True)


if __name__ == "__main__":
    main()
