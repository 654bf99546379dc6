"""Checkpoint verification (C2SP signed note + tlog-checkpoint + cosignature/v1), one core.

Target (issue 10): opening a hub's signed checkpoint (parse under budget, verify the log's
Ed25519 signature, parse the body) at p50 <= 0.2 ms.  Printed beside a bare Ed25519 verify
of the same bytes in the same run, so the library's own overhead shows.
Run: ``.venv/bin/python bench/bench_note.py [count]``.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._timing
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._timing import timings
from sighub.client._checkpoint import Checkpoint, Cosigner, open_checkpoint, sign_checkpoint
from sighub.client._note import Ed25519Signer, parse_note

TARGET_MS = 0.2


def report(label: str, ms: list[float], target: float | None = None) -> None:
    p50, p99 = ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
    verdict = "" if target is None else ("  meets" if p50 <= target else "  ABOVE") + " target"
    print(f"{label:<46} p50 {p50:.4f} ms  p99 {p99:.4f} ms{verdict}")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    log = Ed25519Signer("hub.example/log", bytes(range(32)))
    witnesses = [Cosigner(f"witness{i}.example/w", bytes([i + 1]) * 32) for i in range(2)]
    checkpoint = Checkpoint("hub.example/log", 1_234_567, bytes(range(32))).with_time(1_790_000_000)
    signed = sign_checkpoint(checkpoint, log)
    cosigned = (
        parse_note(signed)
        .with_signatures(*(w.cosign(checkpoint, 1_790_000_001) for w in witnesses))
        .encode()
    )
    body = checkpoint.body.encode()
    raw_key = Ed25519PrivateKey.from_private_bytes(log.seed).public_key()
    signature = log.sign(body)
    verifier = log.verifier
    cosigners = [w.verifier for w in witnesses]

    print(f"Python {platform.python_version()} on {platform.machine()}, {count:,} calls each")
    report(
        "bare Ed25519 verify (cryptography), baseline",
        timings(count, lambda: raw_key.verify(signature, body)),
    )
    report(
        "open_checkpoint, log signature",
        timings(count, lambda: open_checkpoint(signed, verifier, origin="hub.example/log")),
        TARGET_MS,
    )
    report(
        "open_checkpoint, log + 2 witness cosignatures",
        timings(count, lambda: open_checkpoint(cosigned, verifier, cosigners)),
    )


if __name__ == "__main__":
    main()
