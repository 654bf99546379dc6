"""sighub beside a TAXII 2.1 server, OpenTAXII, on the same STIX objects and the same machine.

Each round runs both, alternating, on fresh servers:
- sighub: a hub in its own process (mTLS gRPC on 127.0.0.1), signed bundles of 1,000
  indicators published over 4 connections, then one subscriber's wire sync and the
  member daemon's verified sync into its local store (signatures, bundle rules, the
  hub's log checked, rows written with the cursor);
- OpenTAXII (its own venv, ``make bench-peer``; gunicorn with sync workers on 127.0.0.1,
  SQLite for data and accounts, a bearer token): the same bundles' objects POSTed to a
  collection's objects endpoint over 4 connections (one POST per bundle: the same number
  of STIX objects a request), then one client pulls every page and parses it: JSON
  decoded and every indicator read by sighub's own bundle reader (the parser the daemon
  runs); pages of 1,000 and of 5,000 objects, the faster counting.

Like with like: 4 clients on both sides to publish, one client on both sides to sync.
Targets (issue 14): the verified sync >= 2.5x OpenTAXII's pull-and-parse rate; publish
>= 40x OpenTAXII's POST rate.  Figures are indicators/s (a request also carries the
publisher's identity, the extension definition and the TLP markings, as sighub's do).
Run: ``make bench-peer`` (or ``.venv/bin/python bench/bench_peer.py --peer bench/.peer``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.bench_hub import (  # noqa: E402
    PER_BUNDLE,
    Hub,
    _daemon_sync,
    bench_publish,
    bench_sync,
    prepare,
)
from bench.bench_machine import load, machine_line  # noqa: E402
from sighub.client._envelope import decode_payload, key_id, open_envelope  # noqa: E402
from sighub.client._keys import MemberFiles  # noqa: E402
from sighub.client._stix import parse_bundle  # noqa: E402

API_ROOT = "5b1d3f1e-0c6a-4f55-9a51-6d4c1c6a2f01"
COLLECTION = "sg-csam"
MEDIA = "application/taxii+json;version=2.1"
OPENTAXII = "opentaxii==0.10.0b1"


# Run by the peer's own Python: rows written through OpenTAXII's models, as its POST handler
# writes them (each object once per id and version; its date_added the time of writing).
SEED = """
import datetime, json, sys, uuid
from opentaxii.cli import app
from opentaxii.persistence.sqldb.taxii2models import STIXObject
from opentaxii.taxii2.utils import get_object_version
api_root, alias, *paths = sys.argv[1:]
with app.app_context():
    api = app.taxii_server.servers.taxii2.persistence.api
    collection = api.get_collection(uuid.UUID(api_root), alias).id
    session = api.db.session
    seen = {i for (i,) in session.query(STIXObject.id).filter(STIXObject.type != "indicator")}
    for path in paths:
        with open(path, "rb") as f:
            objects = json.load(f)["objects"]
        rows = []
        for obj in objects:
            if obj["type"] != "indicator":
                if obj["id"] in seen:
                    continue
                seen.add(obj["id"])
            rows.append(dict(
                id=obj["id"], collection_id=collection, type=obj["type"],
                spec_version=obj["spec_version"],
                date_added=datetime.datetime.now(datetime.timezone.utc),
                version=get_object_version(obj),
                serialized_data={k: v for k, v in obj.items()
                                 if k not in ("id", "type", "spec_version")},
            ))
        session.bulk_insert_mappings(STIXObject, rows)
        session.commit()
"""


class PeerError(RuntimeError):
    """OpenTAXII could not be set up or run: the message says which step and why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OpenTaxii:
    """An OpenTAXII server (gunicorn, SQLite) in ``folder``, on 127.0.0.1 only, stopped by
    its PID."""

    def __init__(self, venv: Path, folder: Path, workers: int) -> None:
        self.bin = venv / "bin"
        self.port = _free_port()
        config = {
            "domain": f"127.0.0.1:{self.port}",
            "support_basic_auth": True,
            "return_server_error_details": True,
            "auth_api": {
                "class": "opentaxii.auth.sqldb.SQLDatabaseAPI",
                "parameters": {
                    "db_connection": f"sqlite:///{folder / 'auth.db'}?timeout=600",
                    "create_tables": True,
                    "secret": secrets.token_hex(32),
                    "token_ttl_secs": 86_400,
                },
            },
            "taxii1": None,
            "taxii2": {
                "persistence_api": {
                    "class": "opentaxii.persistence.sqldb.Taxii2SQLDatabaseAPI",
                    "parameters": {
                        # Two workers write one SQLite file: a writer waits for the
                        # other (pysqlite's default 5 s is less than a POST can take).
                        "db_connection": f"sqlite:///{folder / 'data.db'}?timeout=600",
                        "create_tables": True,
                    },
                },
                "title": "bench peer",
                "public_discovery": True,
                "max_content_length": 209_715_200,
            },
            "logging": {"opentaxii": "warning", "root": "warning"},
        }
        cfg = folder / "opentaxii.yml"
        cfg.write_bytes(orjson.dumps(config))  # JSON is YAML
        self.env = {**os.environ, "OPENTAXII_CONFIG": str(cfg), "PYTHONWARNINGS": "ignore"}
        self.token = self._setup()
        self.log = (folder / "gunicorn.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(self.bin / "gunicorn"),
                "opentaxii.http:app",
                "--config=python:opentaxii.http",
                f"--bind=127.0.0.1:{self.port}",
                f"--workers={workers}",
                "--worker-class=sync",
                "--timeout=600",
                "--no-control-socket",
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
        self._wait_ready(folder / "gunicorn.log")

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise PeerError(f"{args[0]} exited {done.returncode}: {tail[0]}")
        return done.stdout

    def _setup(self) -> str:
        """An admin account (its bearer token), the API root and the collection."""
        password = secrets.token_hex(16)
        out = self._run("opentaxii-create-account", "-u", "bench", "-p", password, "-a")
        tokens = [line[7:] for line in out.splitlines() if line.startswith("token: ")]
        if not tokens:
            raise PeerError("opentaxii-create-account printed no token")
        self._run("opentaxii-add-api-root", "-t", "bench", "--default", "--id", API_ROOT)
        self._run("opentaxii-add-collection", "-r", API_ROOT, "-t", COLLECTION, "-a", COLLECTION)
        return tokens[0]

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                raise PeerError(f"gunicorn exited {self.proc.returncode}: {tail[0]}")
            try:
                status, _ = self.request(self.connect(), "GET", "/taxii2/")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise PeerError("gunicorn did not answer /taxii2/ on 127.0.0.1 within 60 s")

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def seed(self, bodies: list[Path]) -> float:
        """Write ``bodies`` straight through OpenTAXII's models (no HTTP, no validation);
        returns the seconds it took."""
        start = time.perf_counter()
        self._run("python", "-c", SEED, API_ROOT, COLLECTION, *map(str, bodies))
        return time.perf_counter() - start

    def request(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        headers = {"Accept": MEDIA, "Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = MEDIA
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()

    def stop(self) -> None:
        """SIGTERM to gunicorn's master by its PID (it stops its workers), SIGKILL if it has
        not exited after 30 s."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self.log.close()


def peer_bodies(pub: Path, paths: list[Path], folder: Path) -> list[Path]:
    """The STIX objects of each signed bundle, as a TAXII 2.1 envelope, one file each."""
    files = MemberFiles(pub)
    public = files.signing_key().public_key()
    keys = {key_id(public): public}
    folder.mkdir()
    out = []
    for path in paths:
        bundle = decode_payload(open_envelope(path.read_bytes(), keys))
        body = folder / f"{path.stem}.json"
        body.write_bytes(orjson.dumps({"objects": bundle["objects"]}))
        out.append(body)
    return out


def peer_publish(peer: OpenTaxii, bodies: list[Path], connections: int) -> float:
    """POST every body over ``connections`` connections; returns indicators/s."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    path = f"/taxii2/{API_ROOT}/collections/{COLLECTION}/objects/"

    def worker() -> int:
        conn = peer.connect()
        sent = 0
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            status, answer = peer.request(conn, "POST", path, body.read_bytes())
            job = orjson.loads(answer) if status == 202 else {}
            if job.get("status") != "complete" or job.get("failure_count"):
                raise PeerError(f"POST {body.name}: HTTP {status}, {answer[:200]!r}")
            sent += PER_BUNDLE
        conn.close()
        return sent

    start = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        published = sum(pool.map(lambda _: worker(), range(connections)))
    rate = published / (time.perf_counter() - start)
    print(f"OpenTAXII POST: {rate:,.0f} indicators/s ({published:,}, {connections} connections); "
          f"{load()}", flush=True)  # fmt: skip
    return rate


def peer_pull(peer: OpenTaxii, total: int, page: int) -> float:
    """One client reads the collection page by page and parses every indicator; returns
    indicators/s."""
    conn = peer.connect()
    path = f"/taxii2/{API_ROOT}/collections/{COLLECTION}/objects/?limit={page}"
    context: dict[str, dict[str, Any]] = {}  # identity, extension, markings: sent once
    indicators = parse_s = 0.0
    nxt: str | None = None
    start = time.perf_counter()
    while True:
        status, body = peer.request(conn, "GET", path + (f"&next={nxt}" if nxt else ""))
        if status != 200:
            raise PeerError(f"GET objects: HTTP {status}, {body[:200]!r}")
        t = time.perf_counter()
        answer = orjson.loads(body)
        found = []
        for obj in answer.get("objects", []):
            if obj["type"] == "indicator":
                found.append(obj)
            else:
                context[obj["id"]] = obj
        if found:
            objects = [*context.values(), *found]
            bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}
            indicators += len(parse_bundle(bundle).indicators)
        parse_s += time.perf_counter() - t
        if not answer.get("more"):
            break
        nxt = answer["next"]
    elapsed = time.perf_counter() - start
    conn.close()
    if indicators != total:
        raise PeerError(f"pulled {indicators:,.0f} indicators, expected {total:,}")
    rate = indicators / elapsed
    print(f"OpenTAXII pull and parse, one client, pages of {page:,}: {rate:,.0f} indicators/s "
          f"({parse_s / elapsed:.0%} of the time parsing); {load()}", flush=True)  # fmt: skip
    return rate


def sighub_round(folder: Path, args: argparse.Namespace) -> tuple[dict[str, float], list[Path]]:
    hub = Hub(folder)
    try:
        pub = hub.member("bench-pub", "publisher,subscriber")
        sub = hub.member("bench-sub", "subscriber")
        paths = prepare(pub, hub, args.indicators, folder / "bundles", args.mixed)
        bodies = peer_bodies(pub, paths, folder / "peer")
        figures = {"publish": bench_publish(hub, pub, paths, args.connections)}
        figures["wire"] = bench_sync(hub, sub, args.indicators)
        figures["verified"], applied, refused = _daemon_sync(hub, sub, check_log=True)
        if applied != args.indicators or refused:
            raise SystemExit(f"daemon applied {applied:,}, refused {refused}")
        print(f"verified sync into the local store: {figures['verified']:,.0f} indicators/s; "
              f"{load()}", flush=True)  # fmt: skip
        return figures, bodies
    finally:
        hub.stop()


def peer_round(folder: Path, bodies: list[Path], args: argparse.Namespace) -> dict[str, float]:
    peer = OpenTaxii(args.peer, folder, args.peer_workers)
    try:
        posted = max(1, min(args.post, args.indicators) // PER_BUNDLE)
        figures = {"publish": peer_publish(peer, bodies[:posted], args.connections)}
        if bodies[posted:]:
            took = peer.seed(bodies[posted:])
            print(f"OpenTAXII seeded with the other {len(bodies[posted:]) * PER_BUNDLE:,} "
                  f"indicators through its models in {took:.0f} s (not a figure)")  # fmt: skip
        # The peer's best page size is its figure (larger pages cost it fewer queries).
        figures["pull"] = max(peer_pull(peer, args.indicators, page) for page in args.pages)
        return figures
    finally:
        peer.stop()


def _installed(venv: Path) -> None:
    for tool in ("gunicorn", "opentaxii-create-account"):
        if not (venv / "bin" / tool).exists():
            raise PeerError(
                f"{venv / 'bin' / tool} is missing: `make bench-peer` installs {OPENTAXII} "
                f"and gunicorn into {venv}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--peer", type=Path, default=ROOT / "bench" / ".peer", help="its venv")
    ap.add_argument("--indicators", type=int, default=300_000, help="published, then synced")
    ap.add_argument(
        "--post",
        type=int,
        default=50_000,
        help="how many of them OpenTAXII receives by POST (the rest is written through its "
        "models, unmeasured: its POST takes minutes per 100,000)",
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=4, help="publishing clients, both sides")
    ap.add_argument("--peer-workers", type=int, default=2, help="gunicorn sync workers")
    ap.add_argument(
        "--pages", type=int, nargs="+", default=[1000, 5000], help="TAXII page sizes to try"
    )
    ap.add_argument("--mixed", action="store_true", help="mixed bundles (see bench_hub.py)")
    args = ap.parse_args()
    args.peer = args.peer.resolve()  # the server runs in its own folder
    print(f"machine: {machine_line()}")
    try:
        _installed(args.peer)
    except PeerError as exc:
        print(f"OpenTAXII cannot run: {exc}")
        raise SystemExit(2) from None
    ours: dict[str, list[float]] = {"publish": [], "wire": [], "verified": []}
    theirs: dict[str, list[float]] = {"publish": [], "pull": []}
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="sighub-peer-") as tmp:
            print(f"-- round {r + 1}: sighub", flush=True)
            figures, bodies = sighub_round(Path(tmp) / "sighub", args)
            for k, v in figures.items():
                ours[k].append(v)
            print(f"-- round {r + 1}: OpenTAXII ({OPENTAXII}, {args.peer_workers} gunicorn "
                  f"workers, SQLite)", flush=True)  # fmt: skip
            (Path(tmp) / "peer-server").mkdir()
            try:
                got = peer_round(Path(tmp) / "peer-server", bodies, args)
            except PeerError as exc:
                print(f"OpenTAXII cannot run: {exc}")
                raise SystemExit(2) from None
            for k, v in got.items():
                theirs[k].append(v)
    m = {k: statistics.mean(v) for k, v in ours.items()}
    t = {k: statistics.mean(v) for k, v in theirs.items()}
    shape = "mixed" if args.mixed else "uniform"
    posted = min(args.post, args.indicators)
    print(f"sighub / OpenTAXII, {args.indicators:,} {shape} indicators synced ({posted:,} "
          f"POSTed to OpenTAXII), means of {args.rounds}:")  # fmt: skip
    sync, pub = m["verified"] / t["pull"], m["publish"] / t["publish"]
    print(f"  verified sync into the local store {m['verified']:>9,.0f} / pull and parse "
          f"{t['pull']:>8,.0f} indicators/s: {sync:5.1f}x  target >= 2.5x: "
          f"{'meets' if sync >= 2.5 else 'BELOW'}")  # fmt: skip
    print(f"  publish, {args.connections} connections          {m['publish']:>9,.0f} / POST "
          f"{t['publish']:>8,.0f} indicators/s: {pub:5.1f}x  target >= 40x: "
          f"{'meets' if pub >= 40 else 'BELOW'}")  # fmt: skip
    print(f"  (wire sync, not verified or stored: {m['wire']:,.0f} indicators/s, "
          f"{m['wire'] / t['pull']:.1f}x the pull and parse)")  # fmt: skip


if __name__ == "__main__":
    main()
