"""What the JSON parser budget costs on the paths that parse untrusted bundles.

Two figures, each with the budget and, as the same-run baseline, with the budget's
pre-parse scan switched off, on 1,000-indicator bundles of mixed shapes:
- the envelope check alone (signature, canonical bytes, bundle rules): the part of a
  publish or a sync the budget touches, its worst case;
- the daemon's verified apply (the check, then the rows written to a local store in one
  transaction with the cursor): what a member's sync does per envelope, without the wire.
Target (issue 8): no throughput loss beyond 5%.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._corpus
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.bench_bundle import _indicators
from sighub.client import _json
from sighub.client._envelope import decode_payload, key_id, open_envelope, public_key_bytes, seal
from sighub.client._local import LocalStore
from sighub.client._model import Publisher, Tlp, now_ms
from sighub.client._stix import build_bundle, parse_bundle
from sighub.client._verify import check_changes

ROUNDS = 7
ENVELOPES = 20


PUBLISHER = Publisher("identity--1b4e28ba-2fa1-41d2-883f-0016d3cca427", "platform-a")


def _envelopes() -> tuple[list[bytes], dict[str, object]]:
    key = Ed25519PrivateKey.generate()
    publisher = PUBLISHER
    out = []
    for n in range(ENVELOPES):
        inds = _indicators(publisher, [f"{n:08x}{i:024x}" for i in range(1000)])
        # Mixed shapes: confidence, labels and TLP vary, so the bundle reader reads more.
        inds = [
            i.__class__(**{**{f: getattr(i, f) for f in i.__slots__},  # type: ignore[attr-defined]
                           "confidence": (k * 7) % 101,
                           "labels": ("seller-term", f"wave-{k % 13}"),
                           "tlp": list(Tlp)[k % 4],
                           "valid_until": now_ms() + timedelta(days=1 + k % 90)})
            for k, i in enumerate(inds)
        ]  # fmt: skip
        out.append(seal(build_bundle(publisher, inds), key))
    return out, {key_id(key.public_key()): key.public_key()}


def _rate(envelopes: list[bytes], keys: dict[str, object]) -> float:
    start = time.perf_counter()
    for raw in envelopes:
        parse_bundle(decode_payload(open_envelope(raw, keys)))  # type: ignore[arg-type]
    return len(envelopes) * 1000 / (time.perf_counter() - start)


def _apply_rate(envelopes: list[bytes], keys: dict[str, object], db: Path) -> float:
    """check_changes + one transaction of rows and cursor, as the daemon applies a batch."""
    directory = {
        kid: ("platform-a", PUBLISHER.id, public_key_bytes(k), None, 0, "")  # type: ignore[arg-type]
        for kid, k in keys.items()
    }
    store = LocalStore(db)
    try:
        start = time.perf_counter()
        for seq, raw in enumerate(envelopes, 1):
            (rows,) = check_changes(directory, [(seq, "sg-csam", raw)])
            assert not isinstance(rows, str), rows
            with store.tx() as c:
                store.insert_new(c, rows)
                store.set_meta("cursor", str(seq))
        return len(envelopes) * 1000 / (time.perf_counter() - start)
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def _compare(measure: Callable[[], float]) -> tuple[float, float]:
    budgeted, baseline = [], []
    real_check = _json.check
    for _ in range(ROUNDS):  # interleaved, so both see the same machine
        budgeted.append(measure())
        _json.check = lambda *_: None  # type: ignore[assignment]
        try:
            baseline.append(measure())
        finally:
            _json.check = real_check
    return statistics.median(budgeted), statistics.median(baseline)


def main() -> None:
    envelopes, keys = _envelopes()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, python {platform.python_version()}")
    print(f"1,000 mixed indicators per envelope, median of {ROUNDS} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "local.db"
        for name, measure in (
            ("envelope check alone", lambda: _rate(envelopes, keys)),
            ("daemon verified apply", lambda: _apply_rate(envelopes, keys, db)),
        ):
            with_budget, without = _compare(measure)
            print(f"{name}:")
            print(f"  with the parser budget:     {with_budget:>10,.0f} indicators/s")
            print(f"  budget scan off (baseline): {without:>10,.0f} indicators/s")
            print(f"  ratio: {with_budget / without:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
