"""The member's commands about the hub's checkpoints (``sighub checkpoint show | compare |
witness-key``) and ``sync``'s witness options (``--witnesses K``, ``--witness-key VKEY``,
from ``$SIGHUB_WITNESSES`` and ``$SIGHUB_WITNESS_KEYS`` by default).

Two members compare out of band: one runs ``checkpoint show`` and sends the note it
prints, the other runs ``checkpoint compare FILE``.  The note is hostile input: read up to
its size limit, opened with the member's pinned hub key and origin, then checked against
the member's own verified checkpoint (``_witness.compare_roots``: a consistency proof from
the hub when the sizes differ).  A split view is recorded as a log alarm, with both notes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sighub.client._checkpoint import open_checkpoint
from sighub.client._cliargs import Needs, add_connection, add_data, add_json, emit
from sighub.client._errors import EXIT_BAD_INPUT, IntegrityAlarm, NoteError, SighubError
from sighub.client._local import LOCAL_DB, LocalStore
from sighub.client._logcheck import LogAlarm, LogState, LogVerifier, SignedRoot, hub_key
from sighub.client._logguard import ORIGIN_KEY, STATE_KEY
from sighub.client._note import MAX_NOTE_BYTES
from sighub.client._rpc import Credential, HubClient
from sighub.client._stix import format_time
from sighub.client._witness import WITNESS_KEY_FILE, WitnessPolicy, compare_roots, witness_key

__all__ = [
    "ENV_WITNESSES",
    "ENV_WITNESS_KEYS",
    "add_checkpoint_commands",
    "add_witness_flags",
    "witness_policy",
]

ENV_WITNESSES: Final = "SIGHUB_WITNESSES"
ENV_WITNESS_KEYS: Final = "SIGHUB_WITNESS_KEYS"  # vkeys separated by white space


class NoCheckpoint(SighubError):
    """The member has verified no checkpoint yet: there is nothing to show or compare."""

    exit_code = EXIT_BAD_INPUT


def _count(text: str) -> int:
    if not text.isdigit() or len(text) > 6:
        raise argparse.ArgumentTypeError(f"received {text!r}, expected a whole number >= 0")
    return int(text)


def add_witness_flags(p: argparse.ArgumentParser) -> None:
    """``sync``'s ``--witnesses`` and ``--witness-key``."""
    p.add_argument(
        "--witnesses",
        type=_count,
        default=os.environ.get(ENV_WITNESSES, "0"),
        metavar="K",
        help="refuse (exit 5, a recorded alarm) unless K of the --witness-key witnesses"
        " co-signed, within --max-checkpoint-age, a checkpoint consistent with this member's;"
        f" 0 checks none (default: ${ENV_WITNESSES}, else 0)",
    )
    p.add_argument(
        "--witness-key",
        action="append",
        default=None,
        metavar="VKEY",
        help="a known witness's verifier key, as `sighub checkpoint witness-key` prints it"
        f" (repeatable; default: ${ENV_WITNESS_KEYS}, separated by spaces)",
    )


def witness_policy(args: argparse.Namespace) -> WitnessPolicy:
    """The policy ``sync``'s options ask for; ``WitnessPolicyError`` (exit 2) for a bad
    vkey or more witnesses required than keys given."""
    keys = args.witness_key
    if keys is None:
        keys = os.environ.get(ENV_WITNESS_KEYS, "").split()
    return WitnessPolicy.from_vkeys(args.witnesses, keys)


# -- the member's verified checkpoint -------------------------------------------------------
def _verified(data: Path, store: LocalStore) -> tuple[Credential, str, SignedRoot]:
    """(credential, log origin, last verified checkpoint), re-verified under the pinned
    hub key (``LogStateError`` for a state that does not verify)."""
    cred = Credential.load(data)
    origin = cred.log_origin or store.meta(ORIGIN_KEY)
    stored = store.meta(STATE_KEY)
    state = LogState.from_dict(json.loads(stored)) if stored else None
    if not origin or state is None or state.checkpoint is None:
        raise NoCheckpoint(
            f"{data}: no checkpoint of the hub verified yet; run `sighub sync --data {data}` first"
        )
    LogVerifier(origin, cred.hub_public_key, state)  # checks the stored notes' signatures
    return cred, origin, state.checkpoint


def cmd_show(args: argparse.Namespace) -> int:
    data = Path(args.data)
    store = LocalStore(data / LOCAL_DB)
    try:
        _, _, mine = _verified(data, store)
    finally:
        store.close()
    if args.json:
        doc = {"size": mine.size, "root": mine.root.hex(), "note": mine.note.decode()}
        emit(args, doc)
        return 0
    sys.stdout.flush()  # the note's exact bytes, for another member to verify
    sys.stdout.buffer.write(mine.note)
    sys.stdout.buffer.flush()
    return 0


def _read_note(path: Path) -> bytes:
    with path.open("rb") as fh:  # at most one byte past the limit: the parser says so
        return fh.read(MAX_NOTE_BYTES + 1)


def cmd_compare(args: argparse.Namespace) -> int:
    data = Path(args.data)
    store = LocalStore(data / LOCAL_DB)
    hub: HubClient | None = None
    try:
        cred, origin, mine = _verified(data, store)
        raw = _read_note(Path(args.file))
        try:
            cp = open_checkpoint(raw, hub_key(origin, cred.hub_public_key), origin=origin)
        except NoteError as exc:
            raise NoteError(
                f"{args.file}: not a checkpoint signed by this member's hub ({origin})",
                exc.rule,
                exc.received,
                exc.expected,
            ) from None
        theirs = SignedRoot(cp.checkpoint.size, cp.checkpoint.root, raw)

        def prove(first: int, second: int) -> list[bytes]:
            nonlocal hub
            if hub is None:
                target = cred if args.hub is None else replace(cred, hub=args.hub)
                hub = HubClient.connect(target, args.insecure)
            return hub.consistency_proof(first, second)

        try:
            how = compare_roots(mine, theirs, prove, f"the checkpoint in {args.file}")
        except LogAlarm as alarm:
            evidence = {**alarm.evidence, "cursor": store.cursor}
            store.add_alarm(format_time(datetime.now(UTC)), alarm.kind.value, str(alarm), evidence)
            raise IntegrityAlarm(
                f"{alarm}; both signed notes are kept in {data / LOCAL_DB} (table log_alarms):"
                " tell the other member and the hub's operator"
            ) from None
    finally:
        if hub is not None:
            hub.close()
        store.close()
    emit(
        args,
        {
            "consistent": True,
            "how": how,
            "mine": {"size": mine.size, "root": mine.root.hex()},
            "theirs": {"size": theirs.size, "root": theirs.root.hex()},
        },
        f"consistent: {how} (this member's checkpoint of size {mine.size}, {args.file}'s of"
        f" size {theirs.size})",
    )
    return 0


def cmd_witness_key(args: argparse.Namespace) -> int:
    data = Path(args.data)
    key, created = witness_key(data, Credential.load(data).member)
    vkey = key.verifier.vkey
    path = data / WITNESS_KEY_FILE
    state = "created" if created else "already there"
    sys.stderr.write(
        f"witness key {key.name} {state} in {path} (mode 0600): this member's sync co-signs"
        " every checkpoint it verifies; give the verifier key below to the members that"
        " require witnesses (--witness-key)\n"
    )
    emit(args, {"vkey": vkey, "path": str(path), "created": created}, vkey)
    return 0


def add_checkpoint_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "checkpoint",
        help="the hub's signed checkpoints: show, compare with another member's, witness key",
    )
    actions = group.add_subparsers(dest="action", required=True)
    p = actions.add_parser(
        "show", help="print the latest checkpoint this member verified (the exact signed note)"
    )
    add_data(p, Needs.MEMBER)
    add_json(p)
    p.set_defaults(func=cmd_show)
    p = actions.add_parser(
        "compare",
        help="check another member's checkpoint against this member's; exit 5 on a split view",
    )
    p.add_argument("file", help="the other member's `sighub checkpoint show` output")
    add_data(p, Needs.MEMBER)
    add_connection(p)
    add_json(p)
    p.set_defaults(func=cmd_compare)
    p = actions.add_parser(
        "witness-key",
        help="create this member's witness key (witness.key) if absent and print its vkey",
    )
    add_data(p, Needs.MEMBER)
    add_json(p)
    p.set_defaults(func=cmd_witness_key)
