"""A lying hub for tests: a plaintext gRPC server on 127.0.0.1 that serves Sync batches of
a log it builds itself, signed with a real hub's own log key (a compromised hub holds it),
so that tests can serve an honest log and then tamper with it.  Its LogService keeps the
cosignatures witnesses send unchecked, serves them back, and answers consistency proofs
from the log ``proofs`` names (the one it shows the member asking, in a split view)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from sighub.client import _leaves
from sighub.client._checkpoint import Checkpoint, CosignatureVerifier, sign_checkpoint
from sighub.client._merkle import consistency_proof, inclusion_proof, leaf_hash, root
from sighub.client._note import Ed25519Signer
from sighub.client._proto import (
    directory_pb2,
    directory_pb2_grpc,
    log_pb2,
    log_pb2_grpc,
    sync_pb2,
    sync_pb2_grpc,
    types_pb2,
)
from sighub.client._rpc import HubClient, to_timestamp
from sighub.hub._server import HubPaths, load_log_signer
from tests.hub.conftest import HubProcess


@dataclass
class Entry:
    """One leaf: its bytes, its collaboration (None for a directory leaf) and, for an
    envelope, the envelope's bytes."""

    leaf: bytes
    collab: str | None = None
    envelope: bytes | None = None
    n: int = 0  # an envelope's number within its collaboration


@dataclass
class FakeLog:
    signer: Ed25519Signer
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def of(cls, hub: HubProcess) -> FakeLog:
        """The real hub's log as it stands, and its log key."""
        with hub.db() as c:
            origin = c.execute("SELECT value FROM meta WHERE key='log_origin'").fetchone()[0]
            raws = dict(c.execute("SELECT seq, raw FROM envelopes").fetchall())
            rows = c.execute("SELECT seq, type, collab, leaf FROM leaves ORDER BY seq").fetchall()
        log = cls(load_log_signer(HubPaths(hub.data).signing_key, origin))
        for seq, kind, collab, leaf in rows:
            envelope = bytes(raws[seq]) if kind == "envelope" else None
            directory = kind in _leaves.DIRECTORY_TYPES
            n = int(json.loads(leaf).get("n", 0)) if envelope is not None else 0
            log.entries.append(Entry(bytes(leaf), None if directory else collab, envelope, n))
        return log

    @property
    def size(self) -> int:
        return len(self.entries)

    def add_envelope(self, collab: str, raw: bytes, n: int | None = None) -> int:
        """Append an envelope of ``collab``, numbered as an honest hub would (or ``n``)."""
        if n is None:
            n = 1 + max((e.n for e in self.entries if e.collab == collab), default=0)
        self.entries.append(Entry(_leaves.envelope_leaf(collab, raw, n), collab, raw, n))
        return self.size

    def add_leaf(self, leaf: bytes, collab: str | None = None) -> int:
        self.entries.append(Entry(leaf, collab))
        return self.size

    def hashes(self, size: int | None = None) -> list[bytes]:
        return [leaf_hash(e.leaf) for e in self.entries[: self.size if size is None else size]]

    def checkpoint(self, size: int | None = None, age: float = 0.0) -> bytes:
        """A checkpoint of the first ``size`` leaves, signed ``age`` seconds ago."""
        size = self.size if size is None else size
        body = Checkpoint(self.signer.name, size, root(self.hashes(size)))
        return sign_checkpoint(body.with_time(int(time.time() - age)), self.signer)

    def batch(
        self,
        after: int,
        end: int | None = None,
        collabs: frozenset[str] = frozenset({"sg-csam"}),
        *,
        note: bytes | None = None,
        signed: int | None = None,
        skip: frozenset[int] = frozenset(),
        as_leaf: frozenset[int] = frozenset(),
        as_hash: frozenset[int] = frozenset(),
    ) -> sync_pb2.SyncResponse:
        """The Sync batch (after, end] as an honest hub serves it to a member of
        ``collabs``, with a checkpoint of size ``signed`` (default the log's); the
        sequences in ``skip`` left out, those in ``as_leaf`` sent as leaves and those in
        ``as_hash`` as bare leaf hashes (as if of another collaboration)."""
        end = self.size if end is None else end
        signed = self.size if signed is None else signed
        changes, leaves = [], []
        for seq in range(after + 1, end + 1):
            e = self.entries[seq - 1]
            if seq in skip:
                continue
            if seq in as_hash:
                leaves.append(types_pb2.LogLeaf(sequence=seq, leaf_hash=leaf_hash(e.leaf)))
            elif e.envelope is not None and e.collab in collabs and seq not in as_leaf:
                changes.append(
                    sync_pb2.Change(
                        sequence=seq,
                        collaboration=e.collab,
                        envelope=e.envelope,
                        collab_sequence=e.n,
                    )
                )
            elif e.collab is None or e.collab in collabs:
                leaves.append(types_pb2.LogLeaf(sequence=seq, leaf=e.leaf))
            else:
                leaves.append(types_pb2.LogLeaf(sequence=seq, leaf_hash=leaf_hash(e.leaf)))
        proof = consistency_proof(end, signed, self.hashes(signed)) if 0 < end < signed else []
        return sync_pb2.SyncResponse(
            changes=changes,
            cursor=end,
            caught_up=True,
            head=self.size,
            leaves=leaves,
            checkpoint=self.checkpoint(signed) if note is None else note,
            consistency=proof,
        )

    def history(self, request: sync_pb2.GetHistoryRequest) -> sync_pb2.GetHistoryResponse:
        """GetHistory as an honest hub answers it, from this log."""
        size = request.tree_size
        hashes = self.hashes(size)
        out = []
        for seq in range(1, request.before_sequence):
            e = self.entries[seq - 1]
            if e.envelope is None or e.collab != request.collaboration:
                continue
            if e.n > request.after_number and len(out) < 256:
                change = sync_pb2.Change(
                    sequence=seq, collaboration=e.collab, envelope=e.envelope, collab_sequence=e.n
                )
                proof = inclusion_proof(seq - 1, size, hashes)
                out.append(sync_pb2.HistoryEntry(change=change, inclusion_proof=proof))
        return sync_pb2.GetHistoryResponse(entries=out)


Script = Callable[[sync_pb2.SyncRequest], list[sync_pb2.SyncResponse]]


class LyingHub(
    sync_pb2_grpc.SyncServiceServicer,
    directory_pb2_grpc.DirectoryServiceServicer,
    log_pb2_grpc.LogServiceServicer,
):
    """Serves the real hub's key directory and whatever ``script`` answers to a Sync
    (by default the fake log, honestly)."""

    def __init__(self, log: FakeLog, real: HubClient) -> None:
        self.log = log
        self.script: Script = lambda request: [log.batch(request.cursor)]
        self.history: Callable[[sync_pb2.GetHistoryRequest], sync_pb2.GetHistoryResponse] = (
            log.history
        )
        self.proofs = log  # the log GetConsistencyProof answers from
        self.cosigned: dict[str, bytes] = {}  # "<name>+<key ID>" -> note with both lines
        self.keys = directory_pb2.GetKeysResponse(
            keys=[
                directory_pb2.MemberKey(
                    member=k.member,
                    identity=k.identity,
                    key_id=k.key_id,
                    public_key=k.public_key,
                    added_at=to_timestamp(k.added_at),
                    revoked_at=None if k.revoked_at is None else to_timestamp(k.revoked_at),
                    revoked_sequence=k.revoked_sequence or 0,
                )
                for k in real.key_directory()
            ]
        )
        self.collab_keys = directory_pb2.GetCollabKeysResponse(
            keys=[
                directory_pb2.CollabKey(
                    collaboration=k.collaboration, epoch=k.epoch, secret=k.secret
                )
                for k in real.collab_keys()
            ]
        )
        self._server: grpc.Server | None = None
        self.port = 0

    def GetKeys(self, request: Any, context: Any) -> Any:
        return self.keys

    def GetCollabKeys(self, request: Any, context: Any) -> Any:
        return self.collab_keys

    def Sync(self, request: Any, context: Any) -> Iterator[sync_pb2.SyncResponse]:
        yield from self.script(request)

    def GetHistory(self, request: Any, context: Any) -> sync_pb2.GetHistoryResponse:
        return self.history(request)

    def GetCheckpoint(self, request: Any, context: Any) -> Any:
        wanted = sorted(self.cosigned) if request.all_witnesses else request.witnesses
        return log_pb2.GetCheckpointResponse(
            checkpoint=self.log.checkpoint(),
            witnessed=[self.cosigned[w] for w in wanted if w in self.cosigned],
        )

    def GetConsistencyProof(self, request: Any, context: Any) -> Any:
        first, second = request.first_size, request.second_size
        if not 0 < first <= second <= self.proofs.size:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"tree size: received {second}, expected at most {self.proofs.size}",
            )
        hashes = consistency_proof(first, second, self.proofs.hashes(second))
        return log_pb2.GetConsistencyProofResponse(hashes=hashes)

    def AddCosignature(self, request: Any, context: Any) -> Any:
        key = CosignatureVerifier.from_vkey(request.witness_key)
        self.cosigned[f"{key.name}+{key.key_id:08x}"] = request.checkpoint + request.cosignature
        return log_pb2.AddCosignatureResponse(size=0)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> LyingHub:
        server = grpc.server(futures.ThreadPoolExecutor(4))
        sync_pb2_grpc.add_SyncServiceServicer_to_server(self, server)
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(self, server)
        log_pb2_grpc.add_LogServiceServicer_to_server(self, server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop(0)
