"""RFC 9162 Merkle tree hashing, proofs and their verification: pure and shared by the hub
(which proves), members' daemons, witnesses and monitors (which verify).

The tree over leaves ``D[0:n]`` is the one of RFC 9162 section 2.1.1: a leaf hashes to
``SHA-256(0x00 || leaf)``, a node to ``SHA-256(0x01 || left || right)``, the left child of
a tree of ``n > 1`` leaves holds the largest power of two below ``n`` leaves, and the empty
tree's root is ``SHA-256("")``.  Every hash a proof carries is the root of such a subtree,
and every subtree is made of *perfect* subtrees (``2**level`` leaves starting at a multiple
of ``2**level``): the plans below name those, so that a store that keeps perfect subtrees
(``sighub.hub._tlog``) answers any proof from a few indexed lookups.

Every check of untrusted input raises ``ProofError``, never ``IndexError`` or a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sighub.client._errors import IntegrityAlarm

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_SIZE",
    "Frontier",
    "Node",
    "ProofError",
    "consistency_plan",
    "consistency_proof",
    "consistency_proof_length",
    "fold",
    "inclusion_plan",
    "inclusion_proof",
    "inclusion_proof_length",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
# RFC 9162 sizes and indexes are uint64; a bigger one can only come from a hostile peer.
MAX_SIZE: Final = 2**64 - 1

_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"


class ProofError(IntegrityAlarm, ValueError):
    """A Merkle proof, or a request for one, cannot be right: a size, index, hash or proof
    length out of range, or hashes that do not lead to the root they claim.  To a member
    this is an integrity alarm (the hub served it); the hub raises it for a proof request
    it cannot answer (a size beyond its log, an index beyond the size)."""


# -- hashing ----------------------------------------------------------------------------
def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf's bytes: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of a subtree given the roots of the perfect subtrees that make it, left
    to right (largest first): they join right to left.  ``EMPTY_ROOT`` for none."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = hashlib.sha256(_NODE + h + acc).digest()
    return acc


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """The RFC 9162 root (MTH) of a tree of ``leaf_hashes``, any number of them including
    none.  Raises ``ProofError`` for a hash that is not 32 bytes."""
    frontier = Frontier()
    frontier.extend(leaf_hashes)
    return frontier.root()


# -- the right border of a tree ---------------------------------------------------------
class Frontier:
    """The right border of a tree: the roots of its perfect subtrees, largest first (one
    per set bit of its size).  It grows leaf by leaf and gives the root of the tree so far
    in O(log n), in O(log n) memory: what a member keeps to check that all the leaves it
    synced make the root the hub signed."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """A tree of ``size`` leaves whose perfect subtrees have roots ``hashes``, largest
        first.  Raises ``ProofError`` when their number is not the number of set bits of
        ``size`` or a hash is not 32 bytes."""
        _check_size("frontier size", size)
        _check_proof(f"frontier of size {size}", hashes, size.bit_count())
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees, largest first: with ``size``, all it takes to
        rebuild this frontier."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> list[bytes]:
        """Add the leaf whose hash is ``leaf_hash``.  Returns the roots of the perfect
        subtrees this leaf completes, lowest first: the leaf hash itself, then each parent
        that became perfect.  Raises ``ProofError`` for a hash that is not 32 bytes or a
        tree already at ``MAX_SIZE``."""
        _check_hash("leaf hash", leaf_hash)
        if self._size == MAX_SIZE:
            raise ProofError(f"frontier: received one more leaf, expected at most {MAX_SIZE}")
        made = [leaf_hash]
        h = leaf_hash
        size = self._size
        hashes = self._hashes
        while size & 1:  # each trailing one bit is a perfect subtree this leaf completes
            h = hashlib.sha256(_NODE + hashes.pop() + h).digest()
            made.append(h)
            size >>= 1
        hashes.append(h)
        self._size += 1
        return made

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """``append`` each of ``leaf_hashes`` without returning what they complete: the
        fast path for a member checking a whole sync against a signed root.  Raises
        ``ProofError`` as ``append`` does; the leaves before the bad one stay appended."""
        sha256 = hashlib.sha256
        hashes = self._hashes
        for leaf in leaf_hashes:
            if type(leaf) is not bytes or len(leaf) != HASH_SIZE or self._size == MAX_SIZE:
                self.append(leaf)  # raises, with the message
            h = leaf
            size = self._size
            while size & 1:
                h = sha256(_NODE + hashes.pop() + h).digest()
                size >>= 1
            hashes.append(h)
            self._size += 1

    def root(self) -> bytes:
        """The RFC 9162 root of the leaves appended so far (``EMPTY_ROOT`` for none)."""
        return fold(self._hashes)

    def copy(self) -> Frontier:
        """An independent frontier of the same leaves."""
        return Frontier(self._size, self._hashes)

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


# -- which subtrees a proof is made of --------------------------------------------------
@dataclass(frozen=True, slots=True)
class Node:
    """The perfect subtree of ``2**level`` leaves starting at leaf ``index * 2**level``."""

    level: int
    index: int

    @property
    def start(self) -> int:
        """Its first leaf."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past its last leaf."""
        return (self.index + 1) << self.level


def _cover(start: int, end: int) -> tuple[Node, ...]:
    """The perfect subtrees, largest first, of the RFC 9162 subtree of leaves
    ``[start, end)`` (``start`` is a multiple of the power of two at or above
    ``end - start``, so they follow the set bits of ``end - start``)."""
    nodes = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append(Node(level, start >> level))
        start += 1 << level
    return tuple(nodes)


def _split(n: int) -> int:
    """The number of leaves in the left child of a tree of ``n > 1`` leaves: the largest
    power of two below ``n``."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_plan(index: int, size: int) -> list[tuple[Node, ...]]:
    """What the inclusion proof of leaf ``index`` in the tree of ``size`` leaves is made
    of (RFC 9162 PATH): for each proof hash, leaf side first, the perfect subtrees whose
    ``fold`` it is.  Raises ``ProofError`` unless ``0 <= index < size <= MAX_SIZE``."""
    _check_index(index, size)
    # Below level ``inner`` the paths to ``index`` and to the last leaf have parted: each
    # level has a sibling, perfect but for the topmost, which reaches the tree's right
    # end.  Above, the path runs along the right border, where only a left sibling (a set
    # bit of ``index``) exists, always perfect.
    inner = (index ^ (size - 1)).bit_length()
    items: list[tuple[Node, ...]] = [
        (Node(level, (index >> level) ^ 1),) for level in range(inner - 1)
    ]
    if inner:
        items.append(_cover(((index >> (inner - 1)) ^ 1) << (inner - 1), size))
    items += [
        (Node(level, (index >> level) ^ 1),)
        for level in range(inner, size.bit_length())
        if (index >> level) & 1
    ]
    return items


def consistency_plan(size1: int, size2: int) -> list[tuple[Node, ...]]:
    """What the consistency proof from the tree of ``size1`` leaves to that of ``size2``
    is made of (RFC 9162 section 2.1.4.1, SUBPROOF): for each proof hash, the perfect
    subtrees whose ``fold`` it is.  Raises ``ProofError`` unless
    ``0 < size1 <= size2 <= MAX_SIZE``."""
    _check_sizes(size1, size2)
    items: list[tuple[Node, ...]] = []
    lo, hi = 0, size2
    whole = True  # [lo, hi) is still the whole of the old tree's root path
    while size1 != hi:
        k = lo + _split(hi - lo)
        if size1 <= k:
            items.append(_cover(k, hi))
            hi = k
        else:
            items.append(_cover(lo, k))
            lo = k
            whole = False
    if not whole:  # the old tree's last subtree: the verifier cannot know its root
        items.append(_cover(lo, hi))
    items.reverse()
    return items


def inclusion_proof_length(index: int, size: int) -> int:
    """The number of hashes in the inclusion proof of leaf ``index`` in a tree of
    ``size`` leaves.  Raises ``ProofError`` unless ``0 <= index < size <= MAX_SIZE``."""
    _check_index(index, size)
    # Below the level where the paths to ``index`` and to the last leaf part, every level
    # has a sibling; above it, only the levels where ``index``'s subtree is a right child.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_length(size1: int, size2: int) -> int:
    """The number of hashes in the consistency proof from ``size1`` to ``size2`` leaves.
    Raises ``ProofError`` unless ``0 < size1 <= size2 <= MAX_SIZE``."""
    _check_sizes(size1, size2)
    if size1 == size2:
        return 0
    # The inclusion path of the old tree's last leaf in the new tree, less the levels
    # inside the old tree's last perfect subtree, plus that subtree's root unless it is
    # the whole old tree (the verifier holds that one).
    skipped = (size1 & -size1).bit_length() - 1
    extra = 0 if size1 & (size1 - 1) == 0 else 1
    return inclusion_proof_length(size1 - 1, size2) - skipped + extra


# -- proofs over a list of leaf hashes --------------------------------------------------
def _resolve(plan: list[tuple[Node, ...]], leaf_hashes: Sequence[bytes]) -> list[bytes]:
    return [fold([root(leaf_hashes[n.start : n.end]) for n in item]) for item in plan]


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of the first ``size``
    of ``leaf_hashes``, leaf side first.  O(size) hashing: a reference for small trees,
    the hub serves proofs from ``sighub.hub._tlog``.  Raises ``ProofError`` unless
    ``0 <= index < size <= len(leaf_hashes)``."""
    _check_known(size, len(leaf_hashes))
    return _resolve(inclusion_plan(index, size), leaf_hashes)


def consistency_proof(size1: int, size2: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The RFC 9162 consistency proof from the tree of the first ``size1`` of
    ``leaf_hashes`` to that of the first ``size2``.  O(size2) hashing, as
    ``inclusion_proof``.  Raises ``ProofError`` unless
    ``0 < size1 <= size2 <= len(leaf_hashes)``."""
    _check_known(size2, len(leaf_hashes))
    return _resolve(consistency_plan(size1, size2), leaf_hashes)


# -- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) -------------------------------
def root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from leaf ``index`` (hash ``leaf_hash``) of a tree
    of ``size`` leaves.  Raises ``ProofError`` for an index not below the size, a proof of
    the wrong length or a hash that is not 32 bytes."""
    expected = inclusion_proof_length(index, size)
    what = f"inclusion proof of leaf {index} in tree of size {size}"
    _check_hash(f"{what}: leaf hash", leaf_hash)
    _check_proof(what, proof, expected)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if fn & 1 or fn == sn:  # ``p`` is a left sibling, or the right border is reached
            r = hashlib.sha256(_NODE + p + r).digest()
            if not fn & 1:  # skip the levels where the last subtree has no sibling
                shift = (fn & -fn).bit_length() - 1 if fn else 0
                fn >>= shift
                sn >>= shift
        else:
            r = hashlib.sha256(_NODE + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # cannot happen once the length is checked; kept as RFC 9162 step 5
        raise ProofError(f"{what}: path ends below the root (step 5 of RFC 9162 2.1.3.2)")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf ``index`` of the tree of ``size`` leaves with root ``root`` has hash
    ``leaf_hash``.  Returns nothing; raises ``ProofError`` if it does not follow (the
    message names the computed and expected roots) or the input is malformed.

    ``size`` and ``root`` must come from one signed checkpoint: a proof binds the leaf to
    the root, not the root to the size (trees of 3 and 4 leaves have proofs of leaf 0 of
    the same shape)."""
    inclusion_proof_length(index, size)  # checks both before they are shown
    what = f"inclusion proof of leaf {index} in tree of size {size}"
    _check_hash(f"{what}: root", root)
    computed = root_from_inclusion(index, size, leaf_hash, proof)
    if computed != root:
        raise ProofError(f"{what}: leads to root {computed.hex()}, expected {root.hex()}")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size1`` leaves with root ``root1`` is a prefix of the tree
    of ``size2`` leaves with root ``root2`` (RFC 9162 section 2.1.4.2).  Returns nothing;
    raises ``ProofError`` if it does not follow or the input is malformed.  A proof from
    the empty tree (``size1 == 0``) proves nothing and is refused, as RFC 9162 and the
    reference vectors do.  As for ``verify_inclusion``, each size must come signed with
    its root."""
    expected = consistency_proof_length(size1, size2)
    what = f"consistency proof from size {size1} to size {size2}"
    _check_hash(f"{what}: root1", root1)
    _check_hash(f"{what}: root2", root2)
    _check_proof(what, proof, expected)
    if size1 == size2:
        if root1 != root2:
            raise ProofError(
                f"{what}: same size, received roots {root1.hex()} and {root2.hex()},"
                " expected equal roots"
            )
        return
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # the old tree is a perfect subtree: its root starts
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr = hashlib.sha256(_NODE + c + fr).digest()
            sr = hashlib.sha256(_NODE + c + sr).digest()
            if not fn & 1:
                shift = (fn & -fn).bit_length() - 1 if fn else 0
                fn >>= shift
                sn >>= shift
        else:
            sr = hashlib.sha256(_NODE + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # cannot happen once the length is checked; kept as RFC 9162 step 7
        raise ProofError(f"{what}: path ends below the root (step 7 of RFC 9162 2.1.4.2)")
    if fr != root1:
        raise ProofError(
            f"{what}: leads to old root {fr.hex()}, expected {root1.hex()}"
            " (the old tree is not a prefix of the new one)"
        )
    if sr != root2:
        raise ProofError(f"{what}: leads to new root {sr.hex()}, expected {root2.hex()}")


# -- input checks -----------------------------------------------------------------------
def _show(value: object) -> str:
    """``value`` for an error message, short whatever a hostile peer sent."""
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_size(what: str, size: int) -> None:
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise ProofError(f"{what}: received {_show(size)}, expected an integer in [0, {MAX_SIZE}]")


def _check_index(index: int, size: int) -> None:
    _check_size("tree size", size)
    if type(index) is not int or not 0 <= index < size:
        raise ProofError(
            f"leaf index: received {_show(index)}, expected an integer in [0, {size}) for a"
            f" tree of size {size}"
        )


def _check_sizes(size1: int, size2: int) -> None:
    _check_size("tree size2", size2)
    if type(size1) is not int or not 0 < size1 <= size2:
        raise ProofError(
            f"tree size1: received {_show(size1)}, expected an integer in [1, {size2}] for a"
            f" consistency proof to size {size2} (none from the empty tree)"
        )


def _check_known(size: int, known: int) -> None:
    _check_size("tree size", size)
    if size > known:
        raise ProofError(f"tree size: received {size}, expected at most the {known} leaves held")


def _check_hash(what: str, h: bytes) -> None:
    if type(h) is not bytes or len(h) != HASH_SIZE:
        shown = f"{len(h)} bytes" if isinstance(h, bytes | bytearray) else type(h).__name__
        raise ProofError(f"{what}: received {shown}, expected {HASH_SIZE} bytes")


def _check_proof(what: str, proof: Sequence[bytes], expected: int) -> None:
    if isinstance(proof, str | bytes | bytearray) or not isinstance(proof, Sequence):
        raise ProofError(f"{what}: received a {type(proof).__name__}, expected a list of hashes")
    if len(proof) != expected:
        raise ProofError(f"{what}: received {len(proof)} hashes, expected {expected}")
    for i, h in enumerate(proof):
        _check_hash(f"{what}: hash {i}", h)
