"""What the JSON parser budget costs on the paths that parse untrusted bundles.

Runs the full check of a synced or published envelope (signature, canonical bytes, bundle
rules: what the daemon's workers and the hub's validation run) on 1,000-indicator
bundles of every kind, with the budget and, as the same-run baseline, with the budget's
pre-parse scan switched off.  Target (issue 8): no throughput loss beyond 5%.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.bench_bundle import _indicators
from client import _json
from client._envelope import decode_payload, key_id, open_envelope, seal
from client._model import Publisher, Tlp, now_ms
from client._stix import build_bundle, parse_bundle

ROUNDS = 7
ENVELOPES = 20


def _envelopes() -> tuple[list[bytes], dict[str, object]]:
    key = Ed25519PrivateKey.generate()
    publisher = Publisher("identity--1b4e28ba-2fa1-41d2-883f-0016d3cca427", "platform-a")
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


def main() -> None:
    envelopes, keys = _envelopes()
    budgeted, baseline = [], []
    real_check = _json.check
    for _ in range(ROUNDS):  # interleaved, so both see the same machine
        budgeted.append(_rate(envelopes, keys))
        _json.check = lambda *_: None  # type: ignore[assignment]
        try:
            baseline.append(_rate(envelopes, keys))
        finally:
            _json.check = real_check
    with_budget, without = statistics.median(budgeted), statistics.median(baseline)
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, python {platform.python_version()}")
    print(f"envelope check, 1,000 mixed indicators each, median of {ROUNDS} rounds:")
    print(f"  with the parser budget:    {with_budget:>10,.0f} indicators/s")
    print(f"  budget scan off (baseline): {without:>10,.0f} indicators/s")
    print(f"  ratio: {with_budget / without:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
