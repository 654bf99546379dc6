"""``LogService``: checkpoints, proofs and leaves of the transparency log, and witness
cosignatures (``_witness``), for any active member.  Like the other services, every call
runs in the writer thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import grpc

from sighub.client._leaves import DIRECTORY_TYPES, PEER_TYPES
from sighub.client._merkle import ProofError, leaf_hash
from sighub.client._proto import log_pb2, log_pb2_grpc, types_pb2
from sighub.hub._errors import HubError
from sighub.hub._service import Services, _log_leaf, _rpc
from sighub.hub._store import TLOG, Store
from sighub.hub._witness import check_cosignature, store_cosignature, witness_ids, witnessed

__all__ = ["LEAVES_MAX", "LEAVES_MAX_BYTES", "LogService"]

# Most leaves one GetLeaves answers (the contract's number, in log.proto), and about how
# many bytes of them.
LEAVES_MAX: Final = 1000
LEAVES_MAX_BYTES: Final = 256 * 1024


class LogService(log_pb2_grpc.LogServiceServicer):
    """Checkpoints, proofs and leaves of the transparency log, for any active member."""

    def __init__(self, s: Services) -> None:
        self.s = s

    async def _proof(self, context: Any, fn: Callable[[Store], list[bytes]]) -> list[bytes]:
        def work() -> list[bytes]:
            self.s.identify(context)
            try:
                return fn(self.s.hub.store)
            except ProofError as exc:
                raise HubError.invalid(str(exc)) from None

        return await self.s.run(work)

    @_rpc
    async def GetCheckpoint(
        self, request: log_pb2.GetCheckpointRequest, context: Any
    ) -> log_pb2.GetCheckpointResponse:
        def work() -> log_pb2.GetCheckpointResponse:
            self.s.identify(context)
            keys = None if request.all_witnesses else witness_ids(request.witnesses)
            store = self.s.hub.store
            latest = store.checkpoint()
            if latest is None:  # serve() issues one before it listens
                raise HubError(grpc.StatusCode.UNAVAILABLE, "no checkpoint issued yet; retry")
            cosigned = witnessed(store, keys) if keys is None or keys else []
            return log_pb2.GetCheckpointResponse(checkpoint=latest[1], witnessed=cosigned)

        return await self.s.run(work)

    @_rpc
    async def AddCosignature(
        self, request: log_pb2.AddCosignatureRequest, context: Any
    ) -> log_pb2.AddCosignatureResponse:
        hub = self.s.hub
        signer = hub.log_signer
        if signer is None:  # not reached: serve() always gives one
            raise HubError(grpc.StatusCode.UNAVAILABLE, "this hub signs no checkpoints")

        def work() -> int:
            member = self.s.identify(context)
            cosigned = check_cosignature(
                signer.verifier,
                request.checkpoint,
                request.cosignature,
                request.witness_key,
                int(hub.clock().timestamp()),
                hub.config.max_clock_skew_seconds,
            )
            with hub.store.tx():
                return store_cosignature(hub.store, member.name, cosigned, hub.now())

        return log_pb2.AddCosignatureResponse(size=await self.s.run(work))

    @_rpc
    async def GetInclusionProof(
        self, request: log_pb2.GetInclusionProofRequest, context: Any
    ) -> log_pb2.GetInclusionProofResponse:
        index, size = request.leaf_index, request.tree_size
        hashes = await self._proof(context, lambda st: TLOG.inclusion_proof(st.conn, index, size))
        return log_pb2.GetInclusionProofResponse(hashes=hashes)

    @_rpc
    async def GetConsistencyProof(
        self, request: log_pb2.GetConsistencyProofRequest, context: Any
    ) -> log_pb2.GetConsistencyProofResponse:
        first, second = request.first_size, request.second_size
        hashes = await self._proof(
            context, lambda st: TLOG.consistency_proof(st.conn, first, second)
        )
        return log_pb2.GetConsistencyProofResponse(hashes=hashes)

    @_rpc
    async def GetLeaves(
        self, request: log_pb2.GetLeavesRequest, context: Any
    ) -> log_pb2.GetLeavesResponse:
        start, end = request.start, request.end

        def work() -> list[types_pb2.LogLeaf]:
            member = self.s.identify(context)
            store = self.s.hub.store
            size = store.head()
            if not start < end <= size:
                raise HubError.invalid(
                    f"GetLeaves: received start={start} end={end}; expected"
                    f" 0 <= start < end <= {size} (the log's size)"
                )
            mine = frozenset(store.member_collabs(member.name))
            out: list[types_pb2.LogLeaf] = []
            total = 0
            for seq, kind, collab, leaf in store.leaf_rows(start + 1, end, LEAVES_MAX):
                full = kind in DIRECTORY_TYPES or kind in PEER_TYPES or collab in mine
                item = leaf if full else leaf_hash(leaf)
                if out and total + len(item) > LEAVES_MAX_BYTES:
                    break
                out.append(_log_leaf(seq, item, full))
                total += len(item)
            return out

        return log_pb2.GetLeavesResponse(leaves=await self.s.run(work))
