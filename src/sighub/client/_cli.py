"""The member's commands: sync, status, match, revoke, member enroll/rotate-key/
rotate-encryption-key/renew-cert, publish,
and the offline keygen, canon, bundle, verify.

``sighub.hub._cli`` assembles the ``sighub`` console script from these and the operator's
commands (the client never imports the hub)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sighub.client._analyst import DEFAULT_TTL, check_envelope, parse_ttl, read_rows, to_indicators
from sighub.client._blind import CollabKey
from sighub.client._canon import canon_for, canonicalize, extract
from sighub.client._cli_checkpoint import add_checkpoint_commands, add_witness_flags, witness_policy
from sighub.client._cli_collab import add_collab_commands
from sighub.client._cliargs import Needs, add_connection, add_data, add_json, emit
from sighub.client._daemon import LOCAL_DB, SyncDaemon, SyncReport
from sighub.client._enckey import rotate_encryption_key
from sighub.client._enroll import (
    check_client_certificate,
    client_certificate_warning,
    enroll,
    renew_certificate,
    rotate_signing_key,
)
from sighub.client._envelope import decode_payload, open_envelope, seal
from sighub.client._errors import EXIT_ALARM, EXIT_BAD_INPUT, KeyFileError, SighubError
from sighub.client._hpke import DEFAULT_SUITE, ENCRYPTION_KEY, SUITES, X25519_SUITE, load_key
from sighub.client._json import DOCUMENT
from sighub.client._json import loads as json_loads
from sighub.client._keys import MemberFiles, MemberIdentity
from sighub.client._local import LocalStore
from sighub.client._logcheck import LogState
from sighub.client._logguard import DEFAULT_MAX_CHECKPOINT_AGE, STATE_KEY, alarm_text
from sighub.client._match_lines import (
    ENV_MAX_TEXT_BYTES,
    max_text_bytes_default,
    open_matcher,
    scan_lines,
    text_limit,
)
from sighub.client._member import Member
from sighub.client._model import Kind
from sighub.client._observe import FollowObserver, add_log_flags, add_metrics_flag, setup_logging
from sighub.client._rpc import Credential
from sighub.client._stix import build_bundle, format_time, parse_bundle

__all__ = ["add_member_commands"]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def cmd_keygen(args: argparse.Namespace) -> int:
    files = MemberFiles(Path(args.data))
    if args.collab:
        path = files.add_collab_key(CollabKey.generate(args.collab, args.epoch))
        emit(
            args,
            {"collaboration": args.collab, "epoch": args.epoch, "path": str(path)},
            f"collaboration key {args.collab} epoch {args.epoch} written to {path} (mode 0600)",
        )
        return 0
    if not args.name:
        raise SighubError("keygen: give --name NAME for a member key, or --collab NAME")
    ident = files.create(args.name)
    key_path = files.root / "signing.key"
    emit(
        args,
        {
            "member": ident.publisher.name,
            "identity": ident.publisher.id,
            "key_id": ident.key_id,
            "path": str(key_path),
        },
        f"member {ident.publisher.name}: identity {ident.publisher.id}",
        f"signing key {ident.key_id} written to {key_path} (mode 0600)",
    )
    return 0


def cmd_canon(args: argparse.Namespace) -> int:
    version = f"canon/{args.canon}"
    if args.explain:
        steps = canon_for(version).explain(args.kind, args.text)
        for step, value in steps:
            if args.json:
                _out(json.dumps({"canon": version, "step": step, "value": value},
                                ensure_ascii=False))  # fmt: skip
            else:
                _out(f"{step}:\n    {value!r}")
        return 0
    value = canonicalize(args.kind, args.text, version)
    _out(json.dumps({"kind": args.kind, "canon": version, "canonical": value}, ensure_ascii=False))
    for c in extract(args.text, version):
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
    check_envelope(Path(args.file), raw)  # the hub's size limit, before anything is written
    out = Path(args.out) if args.out else Path(args.file).with_suffix(".envelope.json")
    out.write_bytes(raw)
    kinds = dict(sorted(Counter(i.kind.value for i in indicators).items()))
    emit(
        args,
        {
            "collaboration": args.collab,
            "indicators": len(indicators),
            "by_kind": kinds,
            "key_id": ident.key_id,
            "bytes": len(raw),
            "envelope": str(out),
        },
        f"{len(indicators)} indicators for {args.collab} ({kinds})",
        f"signed by {ident.key_id}; envelope {len(raw)} bytes written to {out}",
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.identity:
        try:
            text = Path(args.identity).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"{args.identity}: cannot read identity ({exc.strerror})") from None
        ident = MemberIdentity.from_json(json_loads(text, DOCUMENT, args.identity), args.identity)
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
    kinds = dict(sorted(Counter(i.kind.value for i in bundle.indicators).items()))
    until = format_time(max(i.valid_until for i in bundle.indicators))
    emit(
        args,
        {
            "ok": True,
            "envelope": args.envelope,
            "envelope_id": envelope.id,
            "key_id": envelope.key_id,
            "publisher": {"id": bundle.publisher.id, "name": bundle.publisher.name},
            "collaboration": bundle.collaboration,
            "indicators": len(bundle.indicators),
            "by_kind": kinds,
            "valid_until": until,
        },
        f"OK {args.envelope}: envelope {envelope.id[:16]}, signed by {envelope.key_id}",
        f"publisher {bundle.publisher.name} ({bundle.publisher.id}), collab "
        f"{bundle.collaboration}, {len(bundle.indicators)} indicators "
        f"{kinds}, valid until {until} at the latest",
    )
    return 0


def cmd_member(args: argparse.Namespace) -> int:
    if args.action == "enroll":
        data = Path(args.data)
        ident = enroll(Path(args.file), data, args.insecure, args.hub, args.encryption_suite)
        enc = load_key(data / ENCRYPTION_KEY)
        emit(
            args,
            {
                "member": ident.publisher.name,
                "identity": ident.publisher.id,
                "key_id": ident.key_id,
                "encryption_key_id": enc.key_id,
                "encryption_suite": enc.suite,
                "data": args.data,
            },
            f"enrolled {ident.publisher.name} ({ident.publisher.id}) with key {ident.key_id}",
            f"encryption key {enc.key_id} ({enc.suite}) registered",
            f"credential written to {args.data} (hub.json, tls/)",
        )
        return 0
    if args.action == "renew-cert":
        return _renew_cert(args)
    if args.action == "rotate-encryption-key":
        done = rotate_encryption_key(Path(args.data), args.insecure, args.hub, args.suite)
        how = f"rotated: {done.previous_key_id} -> " if done.previous_key_id else "registered: "
        emit(
            args,
            {
                "encryption_key_id": done.key_id,
                "suite": done.suite,
                "previous_encryption_key_id": done.previous_key_id or None,
                "signing_key_id": done.signing_key_id,
                "sequence": done.sequence,
            },
            f"encryption key {how}{done.key_id} ({done.suite}), proved by"
            f" {done.signing_key_id}, logged at sequence {done.sequence}",
        )
        return 0
    kid, old = rotate_signing_key(Path(args.data), args.insecure, args.hub)
    emit(
        args,
        {"key_id": kid, "previous_key_id": old},
        f"signing key rotated: {old} -> {kid} (the old key is revoked at the hub)",
    )
    return 0


def _renew_cert(args: argparse.Namespace) -> int:
    done = renew_certificate(Path(args.data), args.insecure, args.hub)
    emit(
        args,
        {
            "member": done.member,
            "serial": done.serial,
            "not_after": format_time(done.not_after),
            "certificate": str(done.path),
        },
        f"client certificate of {done.member} renewed: serial {done.serial}, valid until "
        f"{format_time(done.not_after)}; written to {done.path} (the old one is refused now)",
    )
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    member = Member(Path(args.data), args.insecure, args.hub)
    result = member.publish_file(
        Path(args.file), args.collab, args.default_ttl, f"canon/{args.canon}"
    )
    state = "already stored" if result.duplicate else "accepted"
    emit(
        args,
        {
            "duplicate": result.duplicate,
            "indicators": result.indicators,
            "envelope_id": result.envelope_id,
            "sequence": result.sequence,
        },
        f"{state}: {result.indicators} indicators, envelope {result.envelope_id[:16]} "
        f"at sequence {result.sequence}",
    )
    return 0


def cmd_republish(args: argparse.Namespace) -> int:
    member = Member(Path(args.data), args.insecure, args.hub)
    canon = f"canon/{args.canon}"
    done = member.republish(Path(args.file), args.collab, canon, args.default_ttl)
    pub, rev = done.published, done.revoked
    emit(
        args,
        {
            "canon": canon,
            "indicators": pub.indicators if pub else 0,
            "envelope_id": pub.envelope_id if pub else None,
            "sequence": pub.sequence if pub else None,
            "already_in_force": done.kept,
            "revoked": done.replaced,
            "revoke_envelope_id": rev.envelope_id if rev else None,
            "revoke_sequence": rev.sequence if rev else None,
        },
        (
            f"published {pub.indicators} indicators under {canon}: envelope "
            f"{pub.envelope_id[:16]} at sequence {pub.sequence}"
            if pub
            else f"published nothing: all {done.kept} rows are in force under {canon} already"
        )
        + (f" ({done.kept} in force already)" if pub and done.kept else "")
        + "; "
        + (
            f"revoked {done.replaced} they replace: envelope {rev.envelope_id[:16]} at "
            f"sequence {rev.sequence}"
            if rev
            else "none to revoke (sync first if the file was published before)"
        ),
    )
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    check_client_certificate(Path(args.data))  # a WARNING 30 days before it expires
    witnesses = witness_policy(args)
    daemon = SyncDaemon(
        Path(args.data),
        args.insecure,
        args.hub,
        batch_size=args.batch_size,
        workers=args.workers,
        max_checkpoint_age=timedelta(seconds=args.max_checkpoint_age),
        witnesses=witnesses,
    )
    try:
        if args.clear_alarm:
            daemon.clear_alarms()
        if args.resync:
            daemon.resync()
        if not args.follow:
            report = _sync_with_progress(daemon)
            witnessed = (
                [
                    f"witnessed: {report.witnesses} of {len(witnesses.keys)} known witnesses"
                    f" vouch for this tree ({witnesses.required} required)"
                ]
                if witnesses.required
                else []
            )
            emit(
                args,
                {
                    "cursor": report.cursor,
                    "envelopes": report.envelopes,
                    "applied": report.applied,
                    "stale": report.stale,
                    "refused": report.refused_count,
                    "checkpoint": {"size": report.log_size, "root": report.log_root},
                    "witnesses": {"required": witnesses.required, "vouched": report.witnesses},
                },
                f"synced to cursor {report.cursor}: {report.envelopes} envelopes, "
                f"{report.applied} indicators applied, {report.stale} stale, "
                f"{report.refused_count} refused",
                f"hub log verified: checkpoint of size {report.log_size}, root "
                f"{report.log_root[:16]}",
                *witnessed,
            )
            return EXIT_ALARM if report.refused else 0
        stop = threading.Event()

        def halt(*_: object) -> None:
            stop.set()
            daemon.interrupt()

        signal.signal(signal.SIGTERM, halt)
        signal.signal(signal.SIGINT, halt)
        observer = FollowObserver.start(args.metrics_listen)
        try:
            daemon.follow(stop, on_batch=observer.batch)
        finally:
            observer.close()
        return 0
    finally:
        daemon.close()


def _sync_with_progress(daemon: SyncDaemon) -> SyncReport:
    """``sync_once`` with a progress bar on stderr (only when it is a terminal; stdout keeps
    the result alone): from the starting cursor to the head each batch reports, so the
    total grows when envelopes are published meanwhile."""
    start = daemon.store.cursor
    with Progress(
        TextColumn("syncing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "{task.fields[envelopes]} envelopes, "
            "{task.fields[applied]} indicators, cursor {task.fields[cursor]}"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("sync", total=None, envelopes=0, applied=0, cursor=start)

        def show(r: SyncReport) -> None:
            total, completed = sync_progress(r, start)
            progress.update(
                task,
                total=total,
                completed=completed,
                envelopes=r.envelopes,
                applied=r.applied,
                cursor=r.cursor,
            )

        return daemon.sync_once(show)


def sync_progress(report: SyncReport, start: int) -> tuple[int, int]:
    """(total, completed) of the bar after a batch: of the log sequences between the
    starting cursor and the head the hub reported, those applied."""
    return max(report.head, report.cursor) - start, report.cursor - start


def cmd_match(args: argparse.Namespace) -> int:
    """JSON lines {"id", "text"} on stdin -> {"id", "matches": [...]} on stdout; a line that
    cannot be read gets {"line": n, "error": "..."}, the run goes on, and the exit code is 2.
    A store that has never synced is refused (exit 2) before any line is read."""
    matcher = open_matcher(Path(args.data), LOCAL_DB)
    sys.stdout.flush()  # lines go to the binary stream underneath
    refused = scan_lines(matcher, sys.stdin.buffer, sys.stdout.buffer, args.max_text_bytes)
    return EXIT_BAD_INPUT if refused else 0


def cmd_revoke(args: argparse.Namespace) -> int:
    results = Member(Path(args.data), args.insecure, args.hub).revoke(args.ids)
    emit(
        args,
        {
            "revoked": [
                {"indicators": r.indicators, "envelope_id": r.envelope_id, "sequence": r.sequence}
                for r in results
            ]
        },
        *(
            f"revoked {r.indicators} indicators: envelope {r.envelope_id[:16]} at {r.sequence}"
            for r in results
        ),
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    expiring = client_certificate_warning(Path(args.data))  # 30 days before it expires
    if expiring is not None:
        sys.stderr.write(f"warning: {expiring}\n")
    data = Path(args.data)
    store = LocalStore(data / LOCAL_DB)
    try:
        status = store.status(datetime.now(UTC))
        alarms = store.alarms()
        stored = store.meta(STATE_KEY)
        keys = store.log_keys()
    finally:
        store.close()
    state = LogState.from_dict(json.loads(stored)) if stored else None
    cp = state.checkpoint if state is not None else None
    lines = [_status_line(k, v) for k, v in sorted(status.items())]
    lines.append(
        f"hub log: checkpoint of size {cp.size} verified, root {cp.root.hex()[:16]}"
        if cp is not None
        else "hub log: no checkpoint verified yet"
    )
    status["checkpoint"] = None if cp is None else {"size": cp.size, "root": cp.root.hex()}
    status["signing_keys"] = _keys_status(data, keys)
    lines.append(_keys_line(status["signing_keys"]))
    status["alarms"] = [{"at": a.at, "kind": a.kind, "message": a.message} for a in alarms]
    if alarms:  # the first line says it: the hub did something its log contradicts
        lines.insert(0, f"ALARM: {alarm_text(data, alarms[-1], len(alarms))}")
    emit(args, status, *lines)
    return EXIT_ALARM if alarms else 0


def _keys_status(data: Path, keys: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The logged signing keys: how many, how many refused for a missing chain, and
    whether this member requires chains (its credential pins the admin key)."""
    try:
        pinned = bool(Credential.load(data).admin_public_key)
    except SighubError:
        pinned = False
    return {
        "logged": len(keys),
        "unchained": sum(1 for k in keys if k[6]),
        "chain_required": pinned,
    }


def _keys_line(keys: dict[str, Any]) -> str:
    if not keys["chain_required"]:
        return (
            f"signing keys: {keys['logged']} in the log; admin-signed chains not required"
            " (this enrollment pins no admin key)"
        )
    return (
        f"signing keys: {keys['logged']} in the log, {keys['unchained']} refused for want of"
        " an admin-signed chain"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 10**9:
        raise argparse.ArgumentTypeError(f"received {text!r}, expected a number of seconds > 0")
    return value


def _status_line(key: str, value: object) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
    return f"{key.replace('_', ' ')}: {value}"


def add_member_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sync", help="pull, verify and apply the hub's log into the local store")
    add_data(p, Needs.MEMBER)
    add_connection(p)
    add_json(p)
    p.add_argument("--follow", action="store_true", help="keep running and apply live changes")
    p.add_argument(
        "--resync",
        action="store_true",
        help="read the hub's log again from the start (after the hub was restored from a "
        "backup; applied changes are kept, nothing is doubled)",
    )
    p.add_argument(
        "--clear-alarm",
        action="store_true",
        help="acknowledge the recorded log alarms (their evidence stays in local.db) and sync"
        " again; with --resync for a hub restored from a backup on purpose",
    )
    p.add_argument(
        "--max-checkpoint-age",
        type=_seconds,
        default=DEFAULT_MAX_CHECKPOINT_AGE.total_seconds(),
        metavar="SECONDS",
        help="oldest signed checkpoint accepted before the hub counts as freezing this member"
        f" (default {int(DEFAULT_MAX_CHECKPOINT_AGE.total_seconds())}, one day)",
    )
    add_witness_flags(p)
    p.add_argument("--batch-size", type=int, default=256, help="envelopes per batch (<= 1000)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes verifying large batches (default: one per core, at most 4; 0: none)",
    )
    add_metrics_flag(p, " (sighub_sync_*; with --follow)")
    add_log_flags(p)
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("status", help="cursor, indicators by kind and collaboration, last sync")
    add_data(p, Needs.MEMBER)
    add_json(p)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("revoke", help="revoke your own indicators (publishes revoked versions)")
    p.add_argument("ids", nargs="+", metavar="ID", help="indicator ids (indicator--...)")
    add_data(p, Needs.MEMBER)
    add_connection(p)
    add_json(p)
    p.set_defaults(func=cmd_revoke)
    p = sub.add_parser("match", help="scan JSON lines {id, text} from stdin with the local store")
    add_data(p, Needs.MEMBER)
    p.add_argument(
        "--max-text-bytes",
        type=text_limit,
        default=max_text_bytes_default(),
        metavar="N",
        help="longest input line (the JSON holding one text) in bytes; a longer one gets an "
        f"error line (default: ${ENV_MAX_TEXT_BYTES}, else 1 MiB)",
    )
    p.set_defaults(func=cmd_match)
    _add_hub_member_commands(sub)
    add_collab_commands(sub)
    add_checkpoint_commands(sub)
    _add_offline_commands(sub)


def _add_suite(p: argparse.ArgumentParser, flag: str) -> None:
    p.add_argument(
        flag,
        choices=sorted(SUITES),
        default=DEFAULT_SUITE,
        help=f"HPKE suite of the encryption key (default {DEFAULT_SUITE}, post-quantum hybrid;"
        f" {X25519_SUITE} only where ML-KEM cannot be used)",
    )


def _add_hub_member_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    member = sub.add_parser(
        "member",
        help="enroll at a hub, rotate the signing or encryption key, renew the TLS certificate",
    )
    add_connection(member)  # the old position; the same options after the action win
    actions = member.add_subparsers(dest="action", required=True)
    p = actions.add_parser("enroll", help="create keys and enroll with an enrollment file")
    p.add_argument("file", help="the enrollment file from the hub's operator")
    add_data(p, None, help="member data directory (created if missing)")
    add_connection(p, in_group=True)
    add_json(p)
    _add_suite(p, "--encryption-suite")
    p = actions.add_parser("rotate-key", help="register a new signing key")
    add_data(p, Needs.MEMBER)
    add_connection(p, in_group=True)
    add_json(p)
    p = actions.add_parser(
        "rotate-encryption-key",
        help="register a new HPKE encryption key (a member's first, if enrolled before them)",
    )
    add_data(p, Needs.MEMBER)
    add_connection(p, in_group=True)
    add_json(p)
    _add_suite(p, "--suite")
    p = actions.add_parser(
        "renew-cert", help="replace the TLS client certificate before it expires (mTLS)"
    )
    add_data(p, Needs.MEMBER)
    add_connection(p, in_group=True)
    add_json(p)
    member.set_defaults(func=cmd_member)

    p = sub.add_parser("publish", help="bundle, sign and publish an analyst file")
    p.add_argument("file", help="analyst file (.csv or .jsonl)")
    p.add_argument("--collab", required=True, help="collaboration to publish to")
    add_data(p, Needs.MEMBER)
    add_connection(p)
    add_json(p)
    p.add_argument(
        "--default-ttl",
        type=parse_ttl,
        default=DEFAULT_TTL,
        help="validity for rows without expires/ttl (default 90d)",
    )
    p.add_argument("--canon", choices=["1", "2"], default="1", help="canon version (default 1)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "republish",
        help="move an analyst file to canon/2 (its blinded rows and its patterns) and revoke"
        " the versions it replaces",
    )
    p.add_argument("file", help="the analyst file (.csv or .jsonl) published before")
    p.add_argument("--collab", required=True, help="collaboration it was published to")
    p.add_argument("--canon", choices=["2"], required=True, help="the canon version to move to")
    add_data(p, Needs.MEMBER)
    add_connection(p)
    add_json(p)
    p.add_argument(
        "--default-ttl",
        type=parse_ttl,
        default=DEFAULT_TTL,
        help="validity for rows without expires/ttl (default 90d)",
    )
    p.set_defaults(func=cmd_republish)


def _add_offline_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    p = sub.add_parser("keygen", help="create a member signing key, or a collaboration key")
    add_data(p, None, help="member data directory (created if missing)")
    add_json(p)
    p.add_argument("--name", help="member name (creates signing.key and member.json)")
    p.add_argument("--collab", help="create a blinding key for this collaboration instead")
    p.add_argument("--epoch", type=int, default=0, help="collaboration key epoch (default 0)")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("canon", help="show the canonical form of a value and its candidates")
    p.add_argument("kind", choices=[k.value for k in Kind], help="indicator kind")
    p.add_argument("text", help="the value or text to canonicalize")
    p.add_argument("--all", action="store_true", help="list candidates of every kind")
    p.add_argument("--canon", choices=["1", "2"], default="1", help="canon version (default 1)")
    p.add_argument("--explain", action="store_true", help="show each folding step of the value")
    p.add_argument(
        "--json", action="store_true", help="JSON lines on stdout (the default, but --explain)"
    )
    p.set_defaults(func=cmd_canon)

    p = sub.add_parser("bundle", help="turn an analyst CSV/JSONL file into a signed envelope")
    p.add_argument("file", help="analyst file (.csv or .jsonl)")
    p.add_argument("--collab", required=True, help="collaboration whose key blinds the values")
    add_data(p, Needs.IDENTITY)
    add_json(p)
    p.add_argument("--out", help="envelope path (default FILE.envelope.json)")
    p.add_argument(
        "--default-ttl",
        type=parse_ttl,
        default=DEFAULT_TTL,
        help="validity for rows without expires/ttl (default 90d)",
    )
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("verify", help="verify an envelope and summarise its bundle")
    p.add_argument("envelope", help="envelope file (from `sighub bundle`)")
    g = p.add_mutually_exclusive_group(required=True)
    add_data(
        p, Needs.IDENTITY, into=g, required=False, help="member data directory whose key signed it"
    )
    g.add_argument("--identity", help="the publisher's member.json")
    add_json(p)
    p.set_defaults(func=cmd_verify)
