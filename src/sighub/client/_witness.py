"""Witnesses of the hub's log (issue 10, item 7): split views made visible.

A hub that shows two members two different trees, each consistent with itself, passes
every check one member can make alone.  Members that compare what they verified catch
it: two checkpoints the hub signed either extend one another (a consistency proof from the
smaller to the larger verifies, and at the same size the roots are equal) or prove that
the hub forked its log.

- A member whose data directory holds ``witness.key`` (``sighub checkpoint witness-key``)
  is a *witness*: its daemon co-signs each checkpoint it verified (C2SP
  ``tlog-cosignature``, ``_cosign``) and the hub keeps and serves the latest one per key.
- A member that *requires* witnesses (``WitnessPolicy``: K of the witness keys it knows)
  fetches their cosigned checkpoints and checks each against its own verified one
  (``check_witnesses``): one that contradicts it is a ``SPLIT_VIEW`` alarm with both
  signed notes, and fewer than K recent cosignatures of trees consistent with its own is
  an ``UNWITNESSED`` alarm.  K = 0 (the default) checks nothing: a member is then alone
  against a split view unless it compares checkpoints out of band
  (``sighub checkpoint show`` / ``compare``, which use ``compare_roots`` too).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sighub.client._checkpoint import CosignatureVerifier, Cosigner, open_checkpoint
from sighub.client._errors import EXIT_BAD_INPUT, NoteError, SighubError
from sighub.client._keys import read_secret, write_secret
from sighub.client._logcheck import AlarmKind, LogAlarm, SignedRoot
from sighub.client._merkle import EMPTY_ROOT, ProofError, verify_consistency
from sighub.client._note import Ed25519Verifier
from sighub.client._rpc import HubRejected, HubUnreachable

__all__ = [
    "MAX_WITNESSED_NOTE",
    "MAX_WITNESS_KEYS",
    "WITNESS_KEY_FILE",
    "WitnessPolicy",
    "WitnessPolicyError",
    "Witnessed",
    "check_witnesses",
    "compare_roots",
    "load_cosigner",
    "witness_key",
]

log = logging.getLogger("sighub.sync")
WITNESS_KEY_FILE: Final = "witness.key"
# A hub's checkpoint with one cosignature is about 300 bytes: a larger witnessed note is
# not one sighub writes, and the evidence kept of it stays small.
MAX_WITNESSED_NOTE: Final = 16 * 1024
_MAX_EVIDENCE_NOTES: Final = 16
MAX_WITNESS_KEYS: Final = 64  # known witnesses: the most one GetCheckpoint may name

Prover = Callable[[int, int], Sequence[bytes]]


class WitnessPolicyError(SighubError, ValueError):
    """A witness requirement that cannot be met or a witness key that cannot be read."""

    exit_code = EXIT_BAD_INPUT


def witness_key(data: Path, member: str) -> tuple[Cosigner, bool]:
    """This member's cosigning key in ``data/witness.key`` (mode 0600), created under the
    name ``<member>.witness.sighub`` if there is none; returns (key, whether created)."""
    existing = load_cosigner(data)
    if existing is not None:
        return existing, False
    key = Cosigner.generate(f"{member}.witness.sighub")
    write_secret(data / WITNESS_KEY_FILE, (key.skey + "\n").encode())
    return key, True


def load_cosigner(data: Path) -> Cosigner | None:
    """The cosigning key in ``data/witness.key``, or None if there is no such file.
    Raises ``KeyFileError`` for a file others may read and ``NoteError`` (which never
    quotes the secret) for one that is not a signer key."""
    path = data / WITNESS_KEY_FILE
    if not path.exists():
        return None
    text = read_secret(path).decode("utf-8", errors="replace").strip()
    try:
        return Cosigner.from_skey(text)
    except NoteError as exc:
        raise NoteError(f"{path}", exc.rule, exc.received, exc.expected) from None


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """How many (``required``) of the witness ``keys`` this member knows must have
    co-signed a recent checkpoint consistent with its own.  0 requires nothing."""

    required: int = 0
    keys: tuple[CosignatureVerifier, ...] = field(default=())

    def __post_init__(self) -> None:
        if type(self.required) is not int or self.required < 0:
            raise WitnessPolicyError(
                f"witnesses: received {self.required!r}, expected a whole number >= 0"
            )
        if len(self.keys) > MAX_WITNESS_KEYS:
            raise WitnessPolicyError(
                f"witness keys: received {len(self.keys)}, expected at most {MAX_WITNESS_KEYS}"
            )
        ids = [(k.name, k.key_id) for k in self.keys]
        if len(set(ids)) != len(ids):
            raise WitnessPolicyError("witness keys: the same key (name and key ID) given twice")
        if self.required > len(self.keys):
            raise WitnessPolicyError(
                f"witnesses: {self.required} required but {len(self.keys)} witness key(s)"
                " given; pass --witness-key VKEY (or $SIGHUB_WITNESS_KEYS) for at least as"
                " many witnesses as --witnesses requires"
            )

    @classmethod
    def from_vkeys(cls, required: int, vkeys: Iterable[str]) -> WitnessPolicy:
        """The policy of ``required`` witnesses among ``vkeys`` (cosigner verifier keys;
        one given twice counts once).  Raises ``WitnessPolicyError``."""
        keys: dict[tuple[str, int], CosignatureVerifier] = {}
        for text in vkeys:
            try:
                key = CosignatureVerifier.from_vkey(text)
            except NoteError as exc:
                raise WitnessPolicyError(f"witness key: {exc}") from None
            if keys.setdefault((key.name, key.key_id), key) != key:
                raise WitnessPolicyError(
                    f"witness keys: two keys named {key.name}+{key.key_id:08x}"
                )
        return cls(required, tuple(keys.values()))

    @property
    def ids(self) -> list[str]:
        """The keys as ``<name>+<hex key ID>``, how GetCheckpoint names witnesses."""
        return [f"{k.name}+{k.key_id:08x}" for k in self.keys]


def _b64(note: bytes) -> str:
    return base64.b64encode(note[:MAX_WITNESSED_NOTE]).decode()


def _split(mine: SignedRoot, theirs: SignedRoot, source: str, detail: str, **more: Any) -> LogAlarm:
    return LogAlarm(
        AlarmKind.SPLIT_VIEW,
        f"{source}: a checkpoint of size {theirs.size} (root {theirs.root.hex()[:16]}) and"
        f" this member's of size {mine.size} (root {mine.root.hex()[:16]}), both signed by"
        f" the hub, {detail}: the hub shows different members different trees",
        {"checkpoint": _b64(mine.note), "other": _b64(theirs.note), "source": source, **more},
    )


def compare_roots(mine: SignedRoot, theirs: SignedRoot, prove: Prover, source: str) -> str:
    """Check that two checkpoints the hub signed are of one log: equal roots at equal
    sizes, else the RFC 9162 consistency proof ``prove(smaller, larger)`` (asked of the
    hub) verifies.  Returns how it was shown; raises ``LogAlarm`` SPLIT_VIEW with both
    notes otherwise, also when the hub refuses (INVALID_ARGUMENT) to prove two sizes it
    signed.  ``HubUnreachable`` and other refusals propagate: no verdict."""
    if mine.size == theirs.size:
        if mine.root != theirs.root:
            raise _split(mine, theirs, source, "have the same size and different roots")
        return f"same size {mine.size}, same root"
    small, large = (mine, theirs) if mine.size < theirs.size else (theirs, mine)
    if small.size == 0:
        if small.root != EMPTY_ROOT:
            raise _split(mine, theirs, source, "disagree: a tree of size 0 with a non-empty root")
        return f"size 0 is a prefix of size {large.size}"
    try:
        proof = prove(small.size, large.size)
    except HubUnreachable:
        raise
    except HubRejected as exc:
        if exc.code != "INVALID_ARGUMENT":
            raise
        raise _split(
            mine,
            theirs,
            source,
            f"and the hub refuses to prove size {small.size} a prefix of size {large.size}"
            f" ({exc.hub_message[:200]})",
        ) from None
    try:
        verify_consistency(small.size, large.size, small.root, large.root, proof)
    except ProofError as exc:
        raise _split(
            mine,
            theirs,
            source,
            f"are not of one log (the consistency proof from {small.size} to {large.size}"
            f" fails: {exc})",
            proof=[bytes(h).hex() for h in list(proof)[:128]],
        ) from None
    return f"consistency proof from size {small.size} to {large.size} verified"


@dataclass(frozen=True, slots=True)
class Witnessed:
    """What ``check_witnesses`` found: the known witnesses that vouched (co-signed, in
    time, a checkpoint consistent with this member's) and why others did not."""

    vouched: tuple[str, ...]
    problems: tuple[str, ...]


def check_witnesses(
    policy: WitnessPolicy,
    hub_key: Ed25519Verifier,
    mine: SignedRoot,
    notes: Sequence[bytes],
    prove: Prover,
    now: float,
    max_age: float,
    max_skew: float,
) -> Witnessed:
    """Check the witnessed checkpoints ``notes`` the hub served against this member's
    verified checkpoint ``mine``.  Each note must be signed by the hub for its origin
    (``open_checkpoint``, which also verifies every known witness's line); one that is
    not counts for nothing.  Every one that is must be of the same log as ``mine``
    (``compare_roots``, SPLIT_VIEW otherwise).  A known witness vouches if its
    cosignature is at most ``max_age`` seconds old and not more than ``max_skew`` ahead.
    Raises ``LogAlarm`` UNWITNESSED when fewer than ``policy.required`` vouch."""
    vouched: dict[str, None] = {}
    seen: set[str] = set()
    problems: list[str] = []
    known = policy.keys
    for note in list(notes)[: 2 * len(known)]:  # the hub sends one per key asked
        try:
            opened = open_checkpoint(
                note, hub_key, known, origin=hub_key.name, max_bytes=MAX_WITNESSED_NOTE
            )
        except NoteError as exc:
            problems.append(f"a witnessed checkpoint that does not verify: {exc}")
            continue
        cp = opened.checkpoint
        theirs = SignedRoot(cp.size, cp.root, note)
        names = ", ".join(f"{c.name}+{c.key_id:08x}" for c in opened.cosignatures) or "nobody"
        compare_roots(mine, theirs, prove, f"the checkpoint witnessed by {names}")
        for c in opened.cosignatures:
            who = f"{c.name}+{c.key_id:08x}"
            seen.add(who)
            age = now - c.time
            if age > max_age:
                problems.append(f"{who} co-signed size {cp.size} {int(age)} s ago (> {max_age:g})")
            elif -age > max_skew:
                problems.append(f"{who} co-signed at a time {int(-age)} s ahead of this clock")
            else:
                vouched[who] = None
    if len(vouched) < policy.required:
        problems += [f"{i}: no cosignature at the hub" for i in policy.ids if i not in seen]
        raise LogAlarm(
            AlarmKind.UNWITNESSED,
            f"{len(vouched)} of the {len(known)} known witnesses vouch for a tree consistent"
            f" with this member's checkpoint of size {mine.size}, {policy.required} required"
            f" ({'; '.join(problems)[:600] or 'none answered'}): the hub may be showing this"
            " member a tree the witnesses do not see",
            {
                "checkpoint": _b64(mine.note),
                "required": policy.required,
                "vouched": list(vouched),
                "problems": problems[:64],
                "witnessed": [_b64(n) for n in list(notes)[:_MAX_EVIDENCE_NOTES]],
            },
        )
    return Witnessed(tuple(vouched), tuple(problems))
