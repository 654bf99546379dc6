"""The whole flow on one machine, with synthetic data (``make demo``):

a hub on loopback (SQLite in a temporary directory, mTLS), two platforms enrolled,
collaboration sg-csam, whose key platform A (its steward) makes and wraps with HPKE to each
member, so that the hub holds only the wraps; platform A publishes examples/indicators.csv;
platform B's daemon syncs and verifies; B scans examples/posts.jsonl and prints matches
with spans; A revokes one indicator; B syncs again and it no longer fires; then a
compromised hub plants a signing key in A's name, and A's daemon catches it in the hub's
transparency log; everything shuts down.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: E402
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from sighub import IntegrityAlarm, Matcher, Member  # noqa: E402
from sighub.client import _leaves  # noqa: E402
from sighub.client._enroll import enroll  # noqa: E402
from sighub.hub._cli import main as sighub  # noqa: E402
from sighub.hub._process import start_hub  # noqa: E402
from sighub.hub._store import Store  # noqa: E402
from sighub.wire import decode_payload, key_id, open_envelope, seal  # noqa: E402

POSTS = [json.loads(x) for x in (ROOT / "examples" / "posts.jsonl").read_text().splitlines()]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(cmd: list[str]) -> None:
    if sighub(cmd) != 0:
        raise SystemExit(f"demo failed at: sighub {' '.join(cmd)}")


def scan(matcher: Matcher) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for post in POSTS:
        hits = matcher.scan(post["text"])
        out[post["id"]] = [m.indicator for m in hits]
        print(f"  {post['id']}: {post['text']!r}")
        for m in hits or []:
            print(
                f"      {m.kind.value:8} {m.text!r:28} [{m.start},{m.end}] from {m.publisher} "
                f"({m.description}, confidence {m.confidence})"
            )
        if not hits:
            print("      no shared indicator fires")
    return out


def plant_key(hub_dir: Path, member: str, collab: str) -> str:
    """What a hub that lies would do: register a signing key of its own in ``member``'s
    name (in its tables and, as it must to be served, in its log) and publish with it.
    It holds no admin key, so the key has no admin-signed chain."""
    key = Ed25519PrivateKey.generate()
    raw, kid = (
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        key_id(key.public_key()),
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    store = Store(hub_dir / "hub.db")
    try:
        m = store.member(member)
        assert m is not None
        # the member's last bundle, signed again with the planted key
        raw_last, kid_last, public_last = store.one(
            "SELECT e.raw, e.key_id, k.public_key FROM envelopes e JOIN member_keys k"
            " ON k.key_id = e.key_id WHERE e.publisher = ? ORDER BY e.seq DESC LIMIT 1",
            member,
        )
        keys = {kid_last: Ed25519PublicKey.from_public_bytes(bytes(public_last))}
        envelope = seal(decode_payload(open_envelope(bytes(raw_last), keys)), key)
        with store.tx() as c:
            c.execute(
                "INSERT INTO member_keys (key_id, member, public_key, added) VALUES (?, ?, ?, ?)",
                (kid, member, raw, now),
            )
            leaf = _leaves.member_enroll(member, m.identity, list(m.roles), kid, raw)
            store.append_leaf("member.enroll", leaf, member=member)
            digest = hashlib.sha256(envelope).hexdigest()
            store.append_envelope(digest, collab, member, kid, now, "[]", envelope, [])
    finally:
        store.close()
    return kid


def lying_hub(root: Path, hub: subprocess.Popen[str], address: str, a: Member, b: Member) -> Any:
    """The hub's operator plants a key in platform A's name, signs an envelope as A with
    it and restarts the hub: A's next sync raises the alarm; B refuses the envelope, since
    no admin-signed chain vouches for the key.  Returns the restarted hub process."""
    step("a lying hub: its operator plants a signing key in platform A's name")
    hub.send_signal(signal.SIGTERM)
    hub.wait(timeout=30)
    planted = plant_key(root / "hub", "platform-a", "sg-csam")
    hub, _ = start_hub(root / "hub", listen=address, stderr=subprocess.DEVNULL)
    print(f"  hub restarted: key {planted} logged under platform-a, and an envelope signed")
    print("  with it as platform A (the hub holds no admin key: no chain vouches for it)")
    try:
        a.sync_once()
        raise SystemExit("demo failed: the planted key went unnoticed")
    except IntegrityAlarm as alarm:
        print(f"  platform A's daemon refused the sync: {str(alarm)[:110]}...")
    code = sighub(["status", "--data", str(root / "platform-a")])
    print(f"  `sighub status` for platform A exits {code} (5: a log alarm is recorded)")
    report = b.sync_once()
    if not report.refused:
        raise SystemExit("demo failed: platform B accepted the planted key's envelope")
    print(f"  platform B refused it outright: {report.refused[0][1][:100]}...")
    return hub


def steward_makes_the_key(root: Path, address: str) -> None:
    """Platform A's client draws the collaboration key and wraps it to each member's
    encryption key; the hub keeps only the wraps."""
    step("platform A (steward): make key epoch 0 and wrap it to every member with HPKE")
    run(["collab", "rekey", "sg-csam", "--data", str(root / "platform-a"), "--hub", address])
    secret = next(
        bytes(s)
        for c, s in sqlite3.connect(root / "platform-a" / "local.db").execute(
            "SELECT collab, secret FROM collab_keys WHERE epoch = 0"
        )
        if c == "sg-csam"
    )
    with sqlite3.connect(root / "hub" / "hub.db") as hub_db:
        wraps = hub_db.execute("SELECT COUNT(*) FROM epoch_wraps").fetchone()[0]
        hub_keys = hub_db.execute("SELECT COUNT(*) FROM collab_keys").fetchone()[0]
    leaks = [
        f.name
        for f in (root / "hub").rglob("*")
        if f.is_file() and (secret in f.read_bytes() or secret.hex().encode() in f.read_bytes())
    ]
    print(f"  the hub holds {wraps} wraps (one per member) and {hub_keys} collaboration keys;")
    print(f"  the epoch secret appears in {len(leaks)} files of the hub's data directory")
    if leaks or hub_keys:
        raise SystemExit(f"demo failed: the hub holds the key ({leaks or 'collab_keys'})")
    run(["collab", "status", "sg-csam", "--data", str(root / "platform-a"), "--hub", address])


def canon2_catch(csv: Path, a: Member, b: Member) -> None:
    """A post canon/1 misses (Greek capitals, a leading-digit word, a defanged link) fires
    once platform A moves its file to canon/2; canon/1 indicators stay in force meanwhile."""
    text = "ΜΕΝU 1n b10, pay at paypal[.]me/example_pay"
    step("a post written to slip past canon/1")
    missed = b.matcher().scan(text)
    print(f"  {text!r}: {len(missed)} indicator(s) fire under canon/1")
    step("platform A: sighub republish --canon 2 (re-blind the file, revoke what it replaces)")
    a.sync_once()
    moved = a.republish(csv, "sg-csam", "canon/2")
    print(
        f"  published {moved.published.indicators} indicators under canon/2, revoked the "
        f"{moved.replaced} canon/1 versions they replace"
    )
    step("platform B: sync and rescan the post")
    b.sync_once()
    caught = b.matcher().scan(text)
    for m in caught:
        print(f"      {m.kind.value:8} {m.text!r:28} ({m.description})")
    assert not missed and {m.kind.value for m in caught} == {"keyword", "payment"}
    print("  canon/2 catches what canon/1 missed")


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sighub-demo-") as tmp:
        root = Path(tmp)
        step("operator: create the hub and serve it on loopback (mTLS)")
        run(["hub", "init", "--data", str(root / "hub"), "--name", "demo-hub"])
        hub, address = start_hub(root / "hub", stderr=subprocess.DEVNULL)
        try:
            print(f"  hub listening on {address} (mTLS)")
            admin = ["admin", "--cred", str(root / "hub" / "admin"), "--hub", address]
            step("operator: two platforms; collaboration sg-csam, stewarded by platform A")
            for name, roles in (
                ("platform-a", "publisher,subscriber"),
                ("platform-b", "subscriber"),
            ):
                run(
                    [
                        *admin,
                        "member",
                        "add",
                        name,
                        "--roles",
                        roles,
                        "--out",
                        str(root / f"{name}.json"),
                    ]
                )
                ident = enroll(root / f"{name}.json", root / name, address=address)
                print(f"  {name} enrolled over mTLS with signing key {ident.key_id}")
            run([*admin, "collab", "add", "sg-csam", "--steward", "platform-a"])
            run([*admin, "collab", "join", "sg-csam", "platform-b"])
            steward_makes_the_key(root, address)
            a = Member(root / "platform-a", address=address)
            b = Member(root / "platform-b", address=address)

            step("platform A: analysts' CSV -> canon/1 -> blinded -> signed STIX -> publish")
            result = a.publish_file(ROOT / "examples" / "indicators.csv", "sg-csam")
            print(f"  accepted {result.indicators} indicators at sequence {result.sequence}")

            step("platform B: sync (every envelope verified against A's key), then scan")
            report = b.sync_once()
            print(
                f"  applied {report.applied} indicators from {report.envelopes} envelope(s), "
                f"refused {len(report.refused)}"
            )
            print(
                f"  hub log verified: signed checkpoint of size {report.log_size}, "
                f"root {report.log_root[:16]}..., consistent with every batch applied"
            )
            before = scan(b.matcher())

            step("platform A: revoke the 's3ller' keyword")
            a.sync_once()  # A reads back its own indicators to version them
            seller = next(i for i in a.matcher().scan("s3ll3r") if i.kind.value == "keyword")
            a.revoke([seller.indicator])
            print(f"  revoked {seller.indicator}")

            step("platform B: sync again and rescan")
            report = b.sync_once()
            print(f"  applied {report.applied} new version(s)")
            after = scan(b.matcher())
            assert seller.indicator in before["p1"] and seller.indicator not in after["p1"]
            print(
                f"\n  p1 fired {len(before['p1'])} indicator(s) before the revocation and "
                f"{len(after['p1'])} after: the revoked keyword no longer fires"
            )
            canon2_catch(ROOT / "examples" / "indicators.csv", a, b)
            hub = lying_hub(root, hub, address, a, b)
        finally:
            step("shutting down")
            hub.send_signal(signal.SIGTERM)
            print(f"  hub exited with {hub.wait(timeout=30)}")
    print(f"\ndone in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
