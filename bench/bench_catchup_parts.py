"""Where a bulk catch-up would stand (issue 12, a feasibility study): the parts of a relay's
catch-up measured apart, per core, on real signed envelopes of 1,000 blinded keyword
indicators (as ``bench_relay.py`` publishes them), beside this machine's calibration.

1. the checks a relay must make of each envelope without building the model of each
   indicator: the publisher's signature (``open_envelope``), then every indicator's TLP
   marking, publisher, id, kind, modified and valid_until read from the parsed payload,
   parsed by the hostile-input parser under its budget (``_json.loads``), by the stdlib
   ``json`` module, and by the budget check then ``orjson``; and the relay's own work per
   envelope (its id and its signed hop record);
2. the verification a relay does today (``check_changes``: the signature, the canonical
   form, the full model of every indicator), the baseline;
3. appending envelopes to a hub store (``Store.append_envelope``: the envelope row, its log
   leaf and Merkle nodes) with the relay's per-envelope checks, WITHOUT the indicators'
   state rows, 1, 10 and 50 envelopes per transaction; and WITH them, through the relay's
   own ``commit`` (version lookups, ``INSERT OR REPLACE INTO indicators``), as today;
4. filling the ``indicators`` state rows afterwards in one pass over the stored envelopes
   (read, parsed under the budget, upserted with the version rule in SQL), in log order
   and sorted by id.

Every store is a fresh SQLite file with the hub's schema and pragmas (WAL,
``synchronous=FULL``) in the temporary folder.  Run:
``.venv/bin/python bench/bench_catchup_parts.py [--size 200000]`` (``make
bench-catchup-parts``): under a minute and 0.3 GB of temporary disk at the default (the
envelopes are held in memory); 4.5 minutes and 1.3 GB at a million.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.bench_hub import _uniform  # noqa: E402
from bench.bench_machine import blake2b_rate, fsync_ms, load, machine_line, sqlite_rates  # noqa: E402
from sighub import Publisher, Tlp  # noqa: E402
from sighub.client import _json  # noqa: E402
from sighub.client._envelope import key_id, open_envelope, public_key_bytes  # noqa: E402
from sighub.client._hops import encode_hops, sign_hop  # noqa: E402
from sighub.client._model import tlp_crosses  # noqa: E402
from sighub.client._stix import (  # noqa: E402
    SIGHUB_EXTENSION_ID,
    TLP_MARKING_IDS,
    build_bundle,
)
from sighub.client._verify import Directory, check_changes, paused_gc  # noqa: E402
from sighub.hub._relay import Outcome, Prepared, commit  # noqa: E402
from sighub.hub._store import Store  # noqa: E402
from sighub.wire import Blinder, CollabKey, seal  # noqa: E402

if TYPE_CHECKING:
    from sighub.hub._hub import Hub

PER_BUNDLE: Final = 1000
COLLAB: Final = "sg-csam"
PEER: Final = "industry"
ORIGIN: Final = "sighub/industry"  # the envelopes' origin hub (the peer)
HERE: Final = "sighub/regional"  # the relaying hub
CEILING: Final = Tlp.AMBER  # the peering's TLP ceiling
WHAT: Final = "envelope.payload"
Row = tuple[str, str, str, str, str, int]  # the hub's indicator row, as ``Prepared.rows``
Parse = Callable[[bytes], Any]


# -- the envelopes ---------------------------------------------------------------------------
def _bundles(args: tuple[bytes, str, bytes, int, int]) -> list[bytes]:
    """``count`` signed bundles of blinded keywords from bundle ``start`` (a worker's share)."""
    private, identity, secret, start, count = args
    key = Ed25519PrivateKey.from_private_bytes(private)
    publisher = Publisher(identity, "bench-pub")
    blinder = Blinder(CollabKey(COLLAB, 1, secret))
    ident = SimpleNamespace(publisher=publisher)  # what ``bench_hub._uniform`` reads
    out = []
    for b in range(start, start + count):
        inds = [_uniform(ident, blinder, b, i) for i in range(PER_BUNDLE)]
        out.append(seal(build_bundle(publisher, inds), key))
    return out


def make_envelopes(size: int, key: Ed25519PrivateKey, identity: str) -> list[bytes]:
    """``size // 1000`` envelopes, built on both cores before any clock starts."""
    private = key.private_bytes_raw()
    total = max(1, size // PER_BUNDLE)
    secret = bytes(range(32))
    jobs = [(private, identity, secret, s, min(10, total - s)) for s in range(0, total, 10)]
    out: list[bytes] = []
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for batch in pool.imap(_bundles, jobs):
            out += batch
            sys.stdout.write(f"\r  built {len(out) * PER_BUNDLE:,} indicators")
            sys.stdout.flush()
    print()
    return out


# -- 1. the checks a relay must make, without the model -------------------------------------
_ALLOWED: Final = {v: t.value for t, v in TLP_MARKING_IDS.items() if tlp_crosses(t, CEILING)}
_KNOWN: Final = set(TLP_MARKING_IDS.values())


def budgeted(body: bytes) -> Any:
    return _json.loads(body, _json.PAYLOAD, WHAT)


def stdlib(body: bytes) -> Any:
    return json.loads(body)


def checked_orjson(body: bytes) -> Any:
    _json.check(body, _json.PAYLOAD, WHAT)  # depth, containers, token length first
    return orjson.loads(body)


def light_rows(doc: Any, identity: str) -> list[Row] | str:
    """The hub's rows of a parsed bundle, or why the relay must refuse it: every indicator
    by the signer's identity, each with one known TLP marking at or below the ceiling and
    string id, modified and valid_until.  Nothing else of the model is checked."""
    publisher = f"{identity}@{ORIGIN}"
    rows: list[Row] = []
    try:
        for o in doc["objects"]:
            if o["type"] != "indicator":
                continue
            marks = o["object_marking_refs"]
            if type(marks) is not list or len(marks) != 1 or marks[0] not in _KNOWN:
                return f"indicator {o.get('id')!r}: object_marking_refs {marks!r}"
            if marks[0] not in _ALLOWED:
                return f"indicator {o['id']!r}: TLP above the ceiling {CEILING.value}"
            if o["created_by_ref"] != identity:
                return f"indicator {o['id']!r}: created by {o['created_by_ref']!r}"
            ids = (o["id"], o["extensions"][SIGHUB_EXTENSION_ID]["kind"], o["modified"],
                   o["valid_until"])  # fmt: skip
            if not all(type(x) is str for x in ids):
                return f"indicator {o['id']!r}: a field that is not a string"
            rows.append((*ids, publisher, 1 if o.get("revoked") is True else 0))
    except (KeyError, TypeError) as exc:
        return f"bundle: not a sighub bundle ({type(exc).__name__}: {exc})"
    return rows or "bundle: no indicator"


def light_check(
    raws: Sequence[bytes], keys: dict[str, Any], identity: str, parse: Parse
) -> tuple[float, list[list[Row]]]:
    """Seconds for the signature and the light read of every envelope, and the rows."""
    out = []
    with paused_gc():
        start = time.perf_counter()
        for raw in raws:
            rows = light_rows(parse(open_envelope(raw, keys).payload), identity)
            if isinstance(rows, str):
                raise SystemExit(f"light check refused a good envelope: {rows}")
            out.append(rows)
        return time.perf_counter() - start, out


def signature_only(raws: Sequence[bytes], keys: dict[str, Any]) -> float:
    with paused_gc():
        start = time.perf_counter()
        for raw in raws:
            open_envelope(raw, keys)
        return time.perf_counter() - start


def hop_records(raws: Sequence[bytes], log_key: Ed25519PrivateKey) -> tuple[float, list[str]]:
    """Seconds for the relay's own work per envelope (its id, its hop record signed with
    the hub's log key over a checkpoint note and a 20-hash inclusion path), and the hops."""
    note = b"sighub/industry\n" + b"1000000\n" + bytes(44) + b"\n\n\xe2\x80\x94 sig\n"
    path = tuple(hashlib.sha256(bytes([i])).digest() for i in range(20))
    out = []
    start = time.perf_counter()
    for seq, raw in enumerate(raws, 1):
        hashlib.sha256(raw).hexdigest()
        hop = sign_hop(log_key.sign, HERE, raw, (), ORIGIN, seq, note,
                       "2026-11-28T22:00:00.000Z", seq, path)  # fmt: skip
        out.append(encode_hops((hop,)).decode())
    return time.perf_counter() - start, out


# -- 3. appending to a hub store ----------------------------------------------------------
class _HubShim:
    """What the relay's ``commit`` reads of a hub: its store and its clock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def now(self) -> str:
        return "2026-11-28T22:00:00.000Z"


def fresh_store(path: Path) -> Store:
    store = Store(path)
    store.migrate()
    store.conn.execute("INSERT INTO collabs (name, created) VALUES (?, ?)", (COLLAB, "now"))
    return store


def commit_without_rows(store: Store, ready: Sequence[Prepared], now: str) -> None:
    """The relay's commit of ``ready`` (``_relay._commit_one``'s per-envelope checks: not
    logged yet, the collaboration, the identity's origin, then the envelope, its leaf and
    the audit row), WITHOUT the version lookups and the indicators' state rows."""
    with store.tx():
        for item in ready:
            if store.envelope_seq(item.envelope_id) is not None:
                raise SystemExit("duplicate envelope")
            if not store.collab_exists(item.collab):
                raise SystemExit("no collaboration")
            bound = store.identity_origin(item.identity)
            if bound is None:
                store.bind_identity(item.identity, item.origin, PEER, item.sequence)
            seq = store.append_envelope(item.envelope_id, item.collab, item.publisher,
                                        item.key_id, now, item.hops, item.raw, item.rows,
                                        [])  # fmt: skip
            store.audit(now, f"peer:{PEER}", "relay", item.collab, envelope=item.envelope_id,
                        seq=seq, origin=item.origin, peer_seq=item.sequence,
                        indicators=len(item.rows))  # fmt: skip
        store.count_relayed(PEER, {Outcome.RELAYED.value: len(ready)})


def append_all(path: Path, ready: list[Prepared], per_tx: int, rows: bool) -> float:
    """Seconds to append ``ready`` into a fresh store, ``per_tx`` envelopes a transaction."""
    store = fresh_store(path)
    hub = cast("Hub", _HubShim(store))
    try:
        start = time.perf_counter()
        for i in range(0, len(ready), per_tx):
            chunk = ready[i : i + per_tx]
            if rows:
                done, _ = commit(hub, PEER, chunk, Counter(), lambda: None)
                if any(o is not Outcome.RELAYED for o, _ in done):
                    raise SystemExit(f"relay commit: {Counter(o for o, _ in done)}")
            else:
                commit_without_rows(store, chunk, "2026-11-28T22:00:00.000Z")
        return time.perf_counter() - start
    finally:
        store.close()


# -- 4. the state rows afterwards -----------------------------------------------------------
# The version rule in SQL: the creator alone revises, later only, never a revoked one (a
# row this skips for another publisher is a conflict the pass would report).
UPSERT: Final = (
    "INSERT INTO indicators (id, collab, publisher, kind, modified, valid_until, revoked, seq)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET collab=excluded.collab,"
    " kind=excluded.kind, modified=excluded.modified, valid_until=excluded.valid_until,"
    " revoked=excluded.revoked, seq=excluded.seq WHERE excluded.publisher = indicators.publisher"
    " AND NOT indicators.revoked AND excluded.modified > indicators.modified"
)
FILL_TX: Final = 50_000  # rows per transaction


def extract(path: Path, keys: dict[str, Any], identity: str) -> tuple[float, list[tuple[Any, ...]]]:
    """Seconds to read every stored envelope in log order and make its indicators' rows."""
    conn = sqlite3.connect(path)
    out: list[tuple[Any, ...]] = []
    with paused_gc():
        start = time.perf_counter()
        cur = conn.execute("SELECT seq, collab, raw FROM envelopes ORDER BY seq")
        while chunk := cur.fetchmany(10):
            for seq, collab, raw in chunk:
                rows = light_rows(budgeted(open_envelope(bytes(raw), keys).payload), identity)
                if isinstance(rows, str):
                    raise SystemExit(f"fill: {rows}")
                out += [(i, collab, p, k, m, v, r, seq) for i, k, m, v, p, r in rows]
        spent = time.perf_counter() - start
    conn.close()
    return spent, out


def fill(path: Path, rows: list[tuple[Any, ...]], order: str) -> float:
    """Seconds to upsert ``rows`` into an empty ``indicators`` table of the store (its
    schema and index as the hub makes them): in log order, sorted by id first (the sort
    timed), or sorted with the ``valid_until`` index built after."""
    store = Store(path)
    conn = store.conn
    table, index = (
        conn.execute("SELECT sql FROM sqlite_master WHERE tbl_name='indicators' AND name=?", (n,))
        .fetchone()[0] for n in ("indicators", "idx_indicators_valid_until")
    )  # fmt: skip
    conn.execute("DROP TABLE indicators")
    conn.execute(table)
    late = order == "sorted, index after"
    if not late:
        conn.execute(index)
    try:
        start = time.perf_counter()
        todo = rows if order == "log order" else sorted(rows)
        for i in range(0, len(todo), FILL_TX):
            with store.tx():
                conn.executemany(UPSERT, todo[i : i + FILL_TX])
        if late:
            with store.tx():
                conn.execute(index)
        spent = time.perf_counter() - start
        (n,) = conn.execute("SELECT COUNT(*) FROM indicators").fetchone()
        if n != len(rows):
            raise SystemExit(f"fill: {n} rows stored of {len(rows)}")
        return spent
    finally:
        store.close()


# -- the run -----------------------------------------------------------------------------------
class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, part: str, what: str, rate: float, unit: str, note: str = "") -> float:
        self.rows.append((part, what, f"{rate:,.0f} {unit}", note))
        print(f"  {part} {what}: {rate:,.0f} {unit} {note}".rstrip(), flush=True)
        return rate

    def print(self) -> None:
        print("\n| part | variant | rate | note |\n|---|---|---|---|")
        for r in self.rows:
            print("| " + " | ".join(r) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=200_000, help="indicators (bundles of 1,000)")
    ap.add_argument("--with-tx", default="1,10,50",
                    help="envelopes per transaction for the appends WITH state rows")  # fmt: skip
    ap.add_argument("--dir", type=Path, default=None, help="for the temporary stores")
    args = ap.parse_args()
    with_tx = [int(x) for x in args.with_tx.split(",") if x]
    print(f"machine: {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="sighub-catchup-parts-", dir=args.dir) as tmp:
        folder = Path(tmp)
        print(f"  keyed BLAKE2b-128, one core: {blake2b_rate(1.0):,.0f} digests/s")
        bulk, single = sqlite_rates(folder, 100_000, 100)
        med, worst = fsync_ms(folder, 50)
        print(f"  SQLite WAL synchronous=FULL: {bulk:,.0f} rows/s (1,000/tx), {single:,.0f} "
              f"commits/s; fsync 4 KiB {med:.3f} ms median, {worst:.3f} max; {load()}")  # fmt: skip
        key, log_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        identity = f"identity--{uuid.uuid4()}"
        raws = make_envelopes(args.size, key, identity)
        n = len(raws) * PER_BUNDLE
        mb = sum(map(len, raws)) / len(raws) / 1e6
        print(f"{len(raws):,} envelopes of {PER_BUNDLE:,} indicators ({mb:.2f} MB each); {load()}")
        run(folder, raws, n, key, log_key, identity, with_tx)


def run(folder: Path, raws: list[bytes], n: int, key: Ed25519PrivateKey,
        log_key: Ed25519PrivateKey, identity: str, with_tx: list[int]) -> None:  # fmt: skip
    kid = key_id(key.public_key())
    keys: dict[str, Any] = {kid: key.public_key()}
    t = Table()
    light, kept, hops = part1(t, raws, n, keys, log_key, identity)
    full = part2(t, raws, n, kid, key, identity)
    ready = [
        Prepared(seq, hashlib.sha256(raw).hexdigest(), raw, COLLAB, identity, ORIGIN, kid,
                 hop, rows)
        for seq, (raw, hop, rows) in enumerate(zip(raws, hops, kept, strict=True), 1)
    ]  # fmt: skip
    del kept
    keep = folder / "without-50.db"
    appends = part3(t, folder, ready, n, keep, with_tx)
    del ready
    read, upserts = part4(t, keep, n, keys, identity)
    _remove(keep)
    best_light = max(light.values())
    fill_rate = 1 / (1 / read + 1 / max(upserts.values()))
    serial = 1 / (1 / best_light + 1 / appends[50] + 1 / fill_rate)
    print(
        f"\nderived: the fill pass end to end (read + upsert, best order) {fill_rate:,.0f}"
        f" rows/s; light check (best parser) + append WITHOUT rows (50/tx) + fill, all on one"
        f" core: {serial:,.0f} ind/s; the catch-up alone (light check, then appends, on two"
        f" cores at once) at most {min(best_light, appends[50]):,.0f} ind/s; today's"
        f" verification alone {full:,.0f}"
    )
    t.print()
    print(f"\n{load()}")


def part1(
    t: Table,
    raws: list[bytes],
    n: int,
    keys: dict[str, Any],
    log_key: Ed25519PrivateKey,
    identity: str,
) -> tuple[dict[str, float], list[list[Row]], list[str]]:
    """(rate per parser, the rows read by the budgeted one, the hop records)."""
    print(f"1. checks without the model, one core; {load()}")
    t.add("1", "signature only (open_envelope)", n / signature_only(raws, keys), "ind/s")
    light: dict[str, float] = {}
    kept: list[list[Row]] = []
    for name, parse in (("budgeted _json.loads", budgeted), ("stdlib json.loads", stdlib),
                        ("_json.check + orjson.loads", checked_orjson)):  # fmt: skip
        spent, rows = light_check(raws, keys, identity, parse)
        light[name] = t.add("1", f"signature + light read, {name}", n / spent, "ind/s")
        kept = kept or rows
    spent, hops = hop_records(raws, log_key)
    t.add("1", "relay's own work: envelope id + signed hop record", n / spent, "ind/s",
          f"({len(raws) / spent:,.0f} envelopes/s)")  # fmt: skip
    print(f"  {load()}")
    return light, kept, hops


def part2(
    t: Table, raws: list[bytes], n: int, kid: str, key: Ed25519PrivateKey, identity: str
) -> float:
    print(f"2. the verification a relay does today (check_changes), one core; {load()}")
    public = public_key_bytes(key.public_key())
    directory: Directory = {kid: ("bench-pub", identity, public, None, 0, "")}
    start = time.perf_counter()
    for i in range(0, len(raws), 10):
        changes = [(i + j + 1, COLLAB, r) for j, r in enumerate(raws[i : i + 10])]
        refused = [c for c in check_changes(directory, changes) if isinstance(c, str)]
        if refused:
            raise SystemExit(f"check_changes refused: {refused[0]}")
    spent = time.perf_counter() - start
    full = t.add("2", "check_changes (signature, canonical form, full model)", n / spent, "ind/s")
    print(f"  {load()}")
    return full


def part3(t: Table, folder: Path, ready: list[Prepared], n: int, keep: Path,
          with_tx: list[int]) -> dict[int, float]:  # fmt: skip
    """Rates of the appends WITHOUT state rows per transaction size (the store of 50 per
    transaction kept at ``keep``), then WITH."""
    print(f"3. appends to a fresh hub store (WAL, synchronous=FULL), one writer; {load()}")
    appends = {}
    for per_tx in (1, 10, 50):
        path = keep if per_tx == 50 else folder / f"without-{per_tx}.db"
        spent = append_all(path, ready, per_tx, rows=False)
        appends[per_tx] = t.add("3", f"WITHOUT state rows, {per_tx} envelopes/tx", n / spent,
                                "ind/s")  # fmt: skip
        if path != keep:
            _remove(path)
        print(f"  {load()}")
    for per_tx in with_tx:
        path = folder / f"with-{per_tx}.db"
        spent = append_all(path, ready, per_tx, rows=True)
        t.add("3", f"WITH state rows (relay's commit, as today), {per_tx} envelopes/tx",
              n / spent, "ind/s")  # fmt: skip
        _remove(path)
        print(f"  {load()}")
    return appends


def part4(
    t: Table, keep: Path, n: int, keys: dict[str, Any], identity: str
) -> tuple[float, dict[str, float]]:
    """(rate of the read, rate of the upserts per order)."""
    print(f"4. the state rows afterwards, from the stored envelopes; {load()}")
    spent, state = extract(keep, keys, identity)
    read = t.add("4", "read + signature + budgeted parse of the stored envelopes", n / spent,
                 "rows/s")  # fmt: skip
    upserts = {}
    for order in ("log order", "sorted by id", "sorted, index after"):
        spent = fill(keep, state, order)
        upserts[order] = t.add("4", f"upsert into indicators, {order}", n / spent, "rows/s",
                               f"({FILL_TX:,} rows/tx)")  # fmt: skip
        print(f"  {load()}")
    return read, upserts


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
