"""A lying peer hub for relay tests: a gRPC server that takes the place of a real hub (its
data directory read after it stopped) on the real hub's address, with its TLS server key
and certificate and its log key, as a compromised hub holds them.  It serves the real log
to the relays enrolled there, then whatever the test appends or tampers with, under
checkpoints it signs itself; what it serves is consistent with what it served before, so
only the checks of the envelopes, hop records and the log's own rules can catch it.

Unlike ``lyinghub.LyingHub`` (plaintext, for member daemons) it serves mTLS, relayed
envelopes' hop records, inclusion proofs, and a Sync that stays open as a following
relay expects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from sighub.client import _leaves
from sighub.client._checkpoint import Checkpoint, sign_checkpoint
from sighub.client._merkle import consistency_proof, inclusion_proof, leaf_hash, root
from sighub.client._note import Ed25519Signer
from sighub.client._proto import log_pb2, log_pb2_grpc, sync_pb2, sync_pb2_grpc, types_pb2
from sighub.hub._server import HubPaths, load_log_signer
from tests.hub.conftest import HubProcess

COLLABS = frozenset({"sg-csam"})  # the collaborations the relay is joined to


@dataclass
class Leaf:
    """One leaf: its bytes; for an envelope, its collaboration, number and the envelope's
    bytes and hop records as served (which a liar may make differ from what the leaf
    commits to)."""

    leaf: bytes
    collab: str | None = None
    envelope: bytes | None = None
    n: int = 0
    hops: bytes = b""


@dataclass
class PeerLog:
    signer: Ed25519Signer
    entries: list[Leaf] = field(default_factory=list)

    @classmethod
    def of(cls, hub: HubProcess) -> PeerLog:
        """The stopped real hub's log, and its log key."""
        with hub.db() as c:
            origin = c.execute("SELECT value FROM meta WHERE key='log_origin'").fetchone()[0]
            rows = c.execute("SELECT seq, raw, hops FROM envelopes").fetchall()
            envelopes = {int(s): (bytes(r), str(h)) for s, r, h in rows}
            leaves = c.execute("SELECT seq, type, collab, leaf FROM leaves ORDER BY seq")
            log = cls(load_log_signer(HubPaths(hub.data).signing_key, origin))
            for seq, kind, collab, leaf in leaves.fetchall():
                if kind == "envelope":
                    raw, hops = envelopes[int(seq)]
                    n = int(json.loads(leaf).get("n", 0))
                    records = b"" if hops == "[]" else hops.encode()
                    log.entries.append(Leaf(bytes(leaf), collab, raw, n, records))
                else:
                    directory = kind in _leaves.DIRECTORY_TYPES
                    log.entries.append(Leaf(bytes(leaf), None if directory else collab))
        return log

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def size(self) -> int:
        return len(self.entries)

    def next_n(self, collab: str) -> int:
        return 1 + max((e.n for e in self.entries if e.collab == collab), default=0)

    def add(self, raw: bytes, hops: bytes = b"", collab: str = "sg-csam") -> Leaf:
        """Append an envelope as an honest hub would log it (the next number, the leaf
        committing to its bytes and hop records); the returned entry may then be altered
        in what is served."""
        n = self.next_n(collab)
        entry = Leaf(_leaves.envelope_leaf(collab, raw, n, hops), collab, raw, n, hops)
        self.entries.append(entry)
        return entry

    def hashes(self, size: int | None = None) -> list[bytes]:
        return [leaf_hash(e.leaf) for e in self.entries[: self.size if size is None else size]]

    def checkpoint(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        body = Checkpoint(self.signer.name, size, root(self.hashes(size)))
        return sign_checkpoint(body.with_time(int(time.time())), self.signer)

    def batch(self, after: int, skip: frozenset[int] = frozenset()) -> sync_pb2.SyncResponse:
        """(after, size] as an honest hub serves it to a member of ``COLLABS``, the
        sequences in ``skip`` left out."""
        changes, leaves = [], []
        for seq in range(after + 1, self.size + 1):
            e = self.entries[seq - 1]
            if seq in skip:
                continue
            if e.envelope is not None and e.collab in COLLABS:
                changes.append(
                    sync_pb2.Change(
                        sequence=seq,
                        collaboration=e.collab,
                        envelope=e.envelope,
                        collab_sequence=e.n,
                        hop_records=e.hops,
                    )
                )
            elif e.collab is None or e.collab in COLLABS:
                leaves.append(types_pb2.LogLeaf(sequence=seq, leaf=e.leaf))
            else:
                leaves.append(types_pb2.LogLeaf(sequence=seq, leaf_hash=leaf_hash(e.leaf)))
        return sync_pb2.SyncResponse(
            changes=changes,
            cursor=self.size,
            caught_up=True,
            head=self.size,
            leaves=leaves,
            checkpoint=self.checkpoint(),
        )


class LyingPeer(sync_pb2_grpc.SyncServiceServicer, log_pb2_grpc.LogServiceServicer):
    """Serves ``log`` (leaving out ``skip``) on the real hub's address with its TLS pair,
    asking every caller for a client certificate of the hub's CA as the real one does."""

    def __init__(self, hub: HubProcess, log: PeerLog) -> None:
        self.hub, self.log = hub, log
        self.skip: frozenset[int] = frozenset()
        self.bad_paths = False  # inclusion paths with one hash flipped
        self.syncs: list[int] = []  # the cursor of each Sync asked
        self._server: grpc.Server | None = None

    def Sync(self, request: Any, context: Any) -> Iterator[sync_pb2.SyncResponse]:
        self.syncs.append(request.cursor)
        yield self.log.batch(request.cursor, self.skip)
        while request.follow and context.is_active():  # nothing more: a quiet hub
            time.sleep(0.1)

    def GetCheckpoint(self, request: Any, context: Any) -> Any:
        return log_pb2.GetCheckpointResponse(checkpoint=self.log.checkpoint())

    def GetInclusionProof(self, request: Any, context: Any) -> Any:
        size = request.tree_size
        proof = inclusion_proof(request.leaf_index, size, self.log.hashes(size))
        if self.bad_paths and proof:
            proof = [bytes(b ^ 0xFF for b in proof[0]), *proof[1:]]
        return log_pb2.GetInclusionProofResponse(hashes=proof)

    def GetConsistencyProof(self, request: Any, context: Any) -> Any:
        second = request.second_size
        proof = consistency_proof(request.first_size, second, self.log.hashes(second))
        return log_pb2.GetConsistencyProofResponse(hashes=proof)

    def __enter__(self) -> LyingPeer:
        pki = self.hub.data / "pki"
        creds = grpc.ssl_server_credentials(
            [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
            root_certificates=(pki / "ca.pem").read_bytes(),
            require_client_auth=True,
        )
        server = grpc.server(futures.ThreadPoolExecutor(8))
        sync_pb2_grpc.add_SyncServiceServicer_to_server(self, server)
        log_pb2_grpc.add_LogServiceServicer_to_server(self, server)
        deadline = time.monotonic() + 20
        while True:  # the real hub's port, free again a moment after it stopped
            try:
                port = server.add_secure_port(self.hub.address, creds)
            except RuntimeError:
                port = 0
            if port == self.hub.port:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the lying peer could not listen on {self.hub.address}")
            time.sleep(0.2)
        server.start()
        self._server = server
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop(0)
