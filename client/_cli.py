"""The member's commands: sync, status, match, revoke, member enroll/rotate-key, publish,
and the offline keygen, canon, bundle, verify.

``hub._cli`` assembles the ``sighub`` console script from these and the operator's
commands (the client never imports the hub)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from client._analyst import DEFAULT_TTL, parse_ttl, read_rows, to_indicators
from client._blind import CollabKey
from client._canon import canonicalize, extract
from client._daemon import LOCAL_DB, SyncDaemon, SyncReport
from client._enroll import enroll, rotate_signing_key
from client._envelope import decode_payload, open_envelope, seal
from client._errors import SighubError
from client._keys import MemberFiles, MemberIdentity
from client._local import LocalStore
from client._matcher import Matcher
from client._member import Member
from client._model import Kind
from client._stix import build_bundle, format_time, parse_bundle

__all__ = ["add_member_commands"]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def cmd_keygen(args: argparse.Namespace) -> int:
    files = MemberFiles(Path(args.data))
    if args.collab:
        path = files.add_collab_key(CollabKey.generate(args.collab, args.epoch))
        _out(f"collaboration key {args.collab} epoch {args.epoch} written to {path} (mode 0600)")
        return 0
    if not args.name:
        raise SighubError("keygen: give --name NAME for a member key, or --collab NAME")
    ident = files.create(args.name)
    _out(f"member {ident.publisher.name}: identity {ident.publisher.id}")
    _out(f"signing key {ident.key_id} written to {files.root / 'signing.key'} (mode 0600)")
    return 0


def cmd_canon(args: argparse.Namespace) -> int:
    _out(
        json.dumps(
            {"kind": args.kind, "canonical": canonicalize(args.kind, args.text)}, ensure_ascii=False
        )
    )
    for c in extract(args.text):
        if c.kind.value == args.kind or args.all:
            row = {
                "kind": c.kind.value,
                "candidate": c.value,
                "span": [c.start, c.end],
                "text": args.text[c.start : c.end],
            }
            _out(json.dumps(row, ensure_ascii=False))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    files = MemberFiles(Path(args.data))
    ident = files.identity()
    key = files.signing_key()
    rows = read_rows(Path(args.file), default_ttl=args.default_ttl)
    indicators = to_indicators(rows, ident.publisher, files.current_collab_key(args.collab))
    raw = seal(build_bundle(ident.publisher, indicators), key)
    out = Path(args.out) if args.out else Path(args.file).with_suffix(".envelope.json")
    out.write_bytes(raw)
    kinds = Counter(i.kind.value for i in indicators)
    _out(f"{len(indicators)} indicators for {args.collab} ({dict(sorted(kinds.items()))})")
    _out(f"signed by {ident.key_id}; envelope {len(raw)} bytes written to {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.identity:
        try:
            doc = json.loads(Path(args.identity).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SighubError(f"{args.identity}: cannot read identity ({exc})") from None
        ident = MemberIdentity.from_json(doc, args.identity)
    else:
        ident = MemberFiles(Path(args.data)).identity()
    raw = Path(args.envelope).read_bytes()
    envelope = open_envelope(raw, {ident.key_id: ident.public_key})
    bundle = parse_bundle(decode_payload(envelope))
    if bundle.publisher != ident.publisher:
        raise SighubError(
            f"{args.envelope}: bundle names publisher {bundle.publisher.id}, but the key "
            f"{ident.key_id} belongs to {ident.publisher.id}"
        )
    kinds = Counter(i.kind.value for i in bundle.indicators)
    until = max(i.valid_until for i in bundle.indicators)
    _out(f"OK {args.envelope}: envelope {envelope.id[:16]}, signed by {envelope.key_id}")
    _out(
        f"publisher {bundle.publisher.name} ({bundle.publisher.id}), collab "
        f"{bundle.collaboration}, {len(bundle.indicators)} indicators "
        f"{dict(sorted(kinds.items()))}, valid until {format_time(until)} at the latest"
    )
    return 0


def cmd_member(args: argparse.Namespace) -> int:
    if args.action == "enroll":
        ident = enroll(Path(args.file), Path(args.data), args.insecure, args.hub)
        _out(f"enrolled {ident.publisher.name} ({ident.publisher.id}) with key {ident.key_id}")
        _out(f"credential written to {args.data} (hub.json, tls/)")
        return 0
    kid, old = rotate_signing_key(Path(args.data), args.insecure)
    _out(f"signing key rotated: {old} -> {kid} (the old key is revoked at the hub)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    member = Member(Path(args.data), args.insecure, args.hub)
    result = member.publish_file(Path(args.file), args.collab, args.default_ttl)
    state = "already stored" if result.duplicate else "accepted"
    _out(
        f"{state}: {result.indicators} indicators, envelope {result.envelope_id[:16]} "
        f"at sequence {result.sequence}"
    )
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    daemon = SyncDaemon(
        Path(args.data), args.insecure, args.hub, batch_size=args.batch_size, workers=args.workers
    )
    try:
        if not args.follow:
            report = _sync_with_progress(daemon)
            _out(
                json.dumps(
                    {
                        "cursor": report.cursor,
                        "envelopes": report.envelopes,
                        "applied": report.applied,
                        "stale": report.stale,
                        "refused": len(report.refused),
                    }
                )
            )
            return 1 if report.refused else 0
        stop = threading.Event()

        def halt(*_: object) -> None:
            stop.set()
            daemon.interrupt()

        signal.signal(signal.SIGTERM, halt)
        signal.signal(signal.SIGINT, halt)
        daemon.follow(
            stop,
            on_batch=lambda r: logging.getLogger("sighub.sync").info(
                "applied cursor=%d envelopes=%d indicators=%d refused=%d",
                r.cursor,
                r.envelopes,
                r.applied,
                len(r.refused),
            ),
        )
        return 0
    finally:
        daemon.close()


def _sync_with_progress(daemon: SyncDaemon) -> SyncReport:
    with Progress(
        TextColumn("syncing"),
        BarColumn(),
        TextColumn(
            "{task.fields[envelopes]} envelopes, "
            "{task.fields[applied]} indicators, cursor {task.fields[cursor]}"
        ),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("sync", total=None, envelopes=0, applied=0, cursor=0)

        def show(r: SyncReport) -> None:
            progress.update(task, envelopes=r.envelopes, applied=r.applied, cursor=r.cursor)

        return daemon.sync_once(show)


def cmd_match(args: argparse.Namespace) -> int:
    """JSON lines {"id", "text"} on stdin -> {"id", "matches": [...]} on stdout; a bad line
    gets an error line naming its number and the run goes on."""
    store = LocalStore(Path(args.data) / LOCAL_DB)
    try:
        matcher = Matcher.from_store(store)
    finally:
        store.close()
    bad = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or "id" not in doc:
                raise ValueError('expected an object with "id" and a string "text"')
        except ValueError as exc:
            bad += 1
            _out(json.dumps({"line": n, "error": str(exc)}))
            continue
        found = [
            {
                "indicator": m.indicator,
                "kind": m.kind.value,
                "collab": m.collaboration,
                "publisher": m.publisher,
                "confidence": m.confidence,
                "span": [m.start, m.end],
                "text": m.text,
            }
            for m in matcher.scan(doc["text"])
        ]
        _out(json.dumps({"id": doc["id"], "matches": found}, ensure_ascii=False))
    return 1 if bad else 0


def cmd_revoke(args: argparse.Namespace) -> int:
    results = Member(Path(args.data), args.insecure, args.hub).revoke(args.ids)
    for r in results:
        _out(f"revoked {r.indicators} indicators: envelope {r.envelope_id[:16]} at {r.sequence}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    store = LocalStore(Path(args.data) / LOCAL_DB)
    try:
        _out(json.dumps(store.status(datetime.now(UTC)), indent=2, sort_keys=True))
    finally:
        store.close()
    return 0


def add_member_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sync", help="pull, verify and apply the hub's log into the local store")
    p.add_argument("--data", required=True, help="member data directory")
    p.add_argument("--follow", action="store_true", help="keep running and apply live changes")
    p.add_argument("--insecure", action="store_true", help="plaintext, loopback only")
    p.add_argument("--hub", help="hub address (default: the credential's)")
    p.add_argument("--batch-size", type=int, default=256, help="envelopes per batch (<= 1000)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes verifying large batches (default: one per core, at most 4; 0: none)",
    )
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("status", help="cursor, indicators by kind and collaboration, last sync")
    p.add_argument("--data", required=True)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("revoke", help="revoke your own indicators (publishes revoked versions)")
    p.add_argument("ids", nargs="+")
    p.add_argument("--data", required=True)
    p.add_argument("--insecure", action="store_true", help="plaintext, loopback only")
    p.add_argument("--hub", help="hub address (default: the credential's)")
    p.set_defaults(func=cmd_revoke)
    p = sub.add_parser("match", help="scan JSON lines {id, text} from stdin with the local store")
    p.add_argument("--data", required=True)
    p.set_defaults(func=cmd_match)
    _add_hub_member_commands(sub)
    _add_offline_commands(sub)


def _add_hub_member_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    member = sub.add_parser("member", help="enroll at a hub, rotate the signing key")
    member.add_argument("--insecure", action="store_true", help="plaintext, loopback only")
    member.add_argument("--hub", help="hub address (default: the enrollment file's)")
    actions = member.add_subparsers(dest="action", required=True)
    p = actions.add_parser("enroll", help="create keys and enroll with an enrollment file")
    p.add_argument("file")
    p.add_argument("--data", required=True, help="member data directory")
    p = actions.add_parser("rotate-key", help="register a new signing key")
    p.add_argument("--data", required=True)
    member.set_defaults(func=cmd_member)

    p = sub.add_parser("publish", help="bundle, sign and publish an analyst file")
    p.add_argument("file")
    p.add_argument("--collab", required=True)
    p.add_argument("--data", required=True, help="member data directory")
    p.add_argument("--insecure", action="store_true", help="plaintext, loopback only")
    p.add_argument("--hub", help="hub address (default: the credential's)")
    p.add_argument("--default-ttl", type=parse_ttl, default=DEFAULT_TTL)
    p.set_defaults(func=cmd_publish)


def _add_offline_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    p = sub.add_parser("keygen", help="create a member signing key, or a collaboration key")
    p.add_argument("--data", required=True, help="member data directory")
    p.add_argument("--name", help="member name (creates signing.key and member.json)")
    p.add_argument("--collab", help="create a blinding key for this collaboration instead")
    p.add_argument("--epoch", type=int, default=0, help="collaboration key epoch (default 0)")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("canon", help="show the canon/1 form of a value and its candidates")
    p.add_argument("kind", choices=[k.value for k in Kind])
    p.add_argument("text")
    p.add_argument("--all", action="store_true", help="list candidates of every kind")
    p.set_defaults(func=cmd_canon)

    p = sub.add_parser("bundle", help="turn an analyst CSV/JSONL file into a signed envelope")
    p.add_argument("file")
    p.add_argument("--collab", required=True)
    p.add_argument("--data", required=True, help="member data directory")
    p.add_argument("--out", help="envelope path (default FILE.envelope.json)")
    p.add_argument(
        "--default-ttl",
        type=parse_ttl,
        default=DEFAULT_TTL,
        help="validity for rows without expires/ttl (default 90d)",
    )
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("verify", help="verify an envelope and summarise its bundle")
    p.add_argument("envelope")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--data", help="member data directory whose key signed it")
    g.add_argument("--identity", help="the publisher's member.json")
    p.set_defaults(func=cmd_verify)
