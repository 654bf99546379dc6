"""The member's log checks during a verified sync of 1M leaves in 256-leaf batches, one core.

Each batch: its leaf hashes from the batch (``leaf_hashes_for_batch``: a third envelopes,
whose leaves are recomputed; a third full leaves; a third given hashes), then
``LogVerifier.verify_batch`` (frontier extend, a new signed checkpoint opened and its
consistency proof from the cursor checked).  Every batch carries a different note, so
every batch pays an Ed25519 verification (the worst case: a hub resending one note is
verified once).  Proofs and notes are made before the clock starts.

Printed beside a same-run baseline (plain SHA-256 of each leaf's bytes) and against the
daemon's verified sync (about 35,000 indicators/s in 1,000-indicator envelopes, i.e. about
35 envelopes/s): target, the checks cost at most 15% of that per envelope.
Run: ``.venv/bin/python bench/bench_logcheck.py [leaves] [batch]``.
"""

from __future__ import annotations

import base64
import hashlib
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sighub.client import _leaves as lv
from sighub.client._checkpoint import Checkpoint, sign_checkpoint
from sighub.client._logcheck import BatchChange, BatchLeaf, LogVerifier, leaf_hashes_for_batch
from sighub.client._merkle import Node, consistency_plan, fold, leaf_hash, node_hash
from sighub.client._note import Ed25519Signer

ORIGIN = "sighub/bench-hub"
DAEMON_ENVELOPES_PER_S = 35.0  # bench/RESULTS.md: ~35,000 indicators/s, 1,000 per envelope
TARGET_SHARE = 0.15
LAG = 1_000  # the hub's checkpoint runs this far ahead of the batch
# An envelope (collaboration, bytes), a leaf the member sees, or only its hash.
Entry = tuple[str, bytes] | bytes


def make_log(n: int) -> tuple[list[Entry], list[bytes]]:
    """Batch entries (change, full leaf or hash) and the leaf hashes of ``n`` leaves."""
    entries: list[Entry] = []
    hashes: list[bytes] = []
    for i in range(n):
        if i % 3 == 0:
            envelope = b'{"payload":"%d","signature":"s3ller","key_id":"ed25519:ab"}' % i
            entries.append(("sg-carrd", envelope))
            hashes.append(leaf_hash(lv.envelope_leaf("sg-carrd", envelope)))
        else:
            raw = lv.collab_membership("sg-carrd", f"member-{i}", joined=True)
            entries.append(raw if i % 3 == 1 else leaf_hash(raw))
            hashes.append(leaf_hash(raw))
    return entries, hashes


def levels(hashes: list[bytes]) -> list[list[bytes]]:
    """Every perfect subtree's hash, by level: what the hub's tree stores."""
    out = [hashes]
    while len(out[-1]) > 1:
        low = out[-1]
        out.append([node_hash(low[i], low[i + 1]) for i in range(0, len(low) - 1, 2)])
    return out


def subtree(tree: list[list[bytes]], node: Node) -> bytes:
    return tree[node.level][node.index]


def frontier_root(tree: list[list[bytes]], size: int) -> bytes:
    nodes, start = [], 0
    for level in reversed(range(size.bit_length())):
        if (size >> level) & 1:
            nodes.append(tree[level][start >> level])
            start += 1 << level
    return fold(nodes)


def batch_of(
    entries: list[Entry], start: int, end: int
) -> tuple[list[BatchChange], list[BatchLeaf]]:
    changes, leaves = [], []
    for seq in range(start + 1, end + 1):
        entry = entries[seq - 1]
        if isinstance(entry, tuple):
            changes.append(BatchChange(seq, entry[0], entry[1]))
        elif len(entry) == 32:
            leaves.append(BatchLeaf(seq, leaf_hash=entry))
        else:
            leaves.append(BatchLeaf(seq, leaf=entry))
    return changes, leaves


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    now = int(time.time())
    hub = Ed25519Signer(ORIGIN, bytes(range(32)))
    print(
        f"Python {platform.python_version()} on {platform.machine()}:"
        f" {n:,} leaves, batches of {batch}"
    )
    prep = time.perf_counter()
    entries, hashes = make_log(n)
    tree = levels(hashes)
    plan = []
    for start in range(0, n, batch):
        end = min(start + batch, n)
        size = min(end + LAG, n)
        checkpoint = Checkpoint(ORIGIN, size, frontier_root(tree, size)).with_time(now + start % 7)
        proof = (
            []
            if end == size
            else [fold([subtree(tree, x) for x in item]) for item in consistency_plan(end, size)]
        )
        plan.append(
            (start, end, batch_of(entries, start, end), sign_checkpoint(checkpoint, hub), proof)
        )
    leaf_bytes = [e[1] if isinstance(e, tuple) else e for e in entries]
    print(f"prepared in {time.perf_counter() - prep:.1f} s (not measured)")

    sha256 = hashlib.sha256
    t0 = time.process_time()
    for data in leaf_bytes:
        sha256(b"\x00" + data).digest()
    baseline = time.process_time() - t0

    verifier = LogVerifier(ORIGIN, base64.b64encode(hub.public_key).decode())
    items_time = check_time = 0.0
    for start, end, (changes, leaves), note, proof in plan:
        t0 = time.process_time()
        items = leaf_hashes_for_batch(start, end, changes, leaves)
        t1 = time.process_time()
        verifier.verify_batch(start, end, items, note, proof)
        t2 = time.process_time()
        items_time += t1 - t0
        check_time += t2 - t1
    assert verifier.state.frontier.root() == frontier_root(tree, n)

    batches = len(plan)
    total = items_time + check_time
    per_envelope_budget = 1e6 / DAEMON_ENVELOPES_PER_S
    rows = [
        ("baseline: plain SHA-256 per leaf", baseline),
        ("leaf hashes of each batch (recompute, hash)", items_time),
        ("verify_batch (frontier + checkpoint + proof)", check_time),
        ("log checks in all", total),
    ]
    for label, seconds in rows:
        print(
            f"{label:<46} {seconds:7.2f} s CPU  {seconds / n * 1e6:6.2f} µs/leaf"
            f"  {seconds / batches * 1e6:8.1f} µs/batch"
        )
    share = total / n * 1e6 / per_envelope_budget
    verdict = "meets" if share <= TARGET_SHARE else "ABOVE"
    print(
        f"per leaf, {total / n * 1e6:.2f} µs against the daemon's {per_envelope_budget:,.0f} µs"
        f" per verified envelope: {share:.4%} ({verdict} the {TARGET_SHARE:.0%} target);"
        f" {total / baseline:.1f}x the plain SHA-256 baseline"
    )


if __name__ == "__main__":
    main()
