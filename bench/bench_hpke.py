"""Member encryption keys (issue 11, first slice): the HPKE primitive, one core.

Targets: unwrapping on a member (``open_`` of one sealed 32-byte epoch secret) <= 5 ms,
and wrapping one 32-byte epoch secret for 500 members (500 ``seal`` calls to 500 distinct
recipient public keys, each parsed from its raw bytes as the key ring holds them) <= 1 s.
Both suites, with same-run baselines: one Ed25519 sign + verify, and the X25519 suite
beside the default MLKEM768-X25519 hybrid (the ratio is the price of the post-quantum KEM).
Run: ``.venv/bin/python bench/bench_hpke.py [rounds]``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._timing
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

import cryptography
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._timing import timings
from sighub.client._hpke import (
    DEFAULT_SUITE,
    SUITES,
    X25519_SUITE,
    EncryptionKey,
    load_key,
    seal,
)

UNWRAP_TARGET_MS = 5.0
WRAP_TARGET_S = 1.0
MEMBERS = 500
AAD = b"sighub collab sg-csam epoch 7"
INFO = b"sighub-epoch-wrap-v1"


def line(label: str, ms: list[float], target: float | None = None) -> float:
    p50, p99 = ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
    verdict = "" if target is None else ("  meets" if p99 <= target else "  ABOVE") + " target"
    print(f"{label:<52} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms{verdict}")
    return p50


def wrap_all(suite: str, publics: list[bytes], secret: bytes) -> list[bytes]:
    return [seal(suite, public, secret, AAD, INFO) for public in publics]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    count = 2_000
    print(
        f"Python {platform.python_version()} on {platform.machine()}, cryptography"
        f" {cryptography.__version__}, {os.cpu_count()} CPUs (one used)"
    )
    signer = Ed25519PrivateKey.generate()
    verifier = signer.public_key()
    message = os.urandom(64)
    base = line(
        "baseline: one Ed25519 sign + verify",
        timings(count, lambda: verifier.verify(signer.sign(message), message)),
    )
    secret = os.urandom(32)
    unwrap: dict[str, float] = {}
    wrap: dict[str, float] = {}
    for suite in (DEFAULT_SUITE, X25519_SUITE):
        key = EncryptionKey.generate(suite)
        sealed = seal(suite, key.public, secret, AAD, INFO)
        assert key.open_(sealed, AAD, INFO) == secret
        unwrap[suite] = line(
            f"unwrap (open_ 32 B), {suite.split('-')[0]}",
            timings(count, lambda k=key, s=sealed: k.open_(s, AAD, INFO)),
            UNWRAP_TARGET_MS,
        )
        with tempfile.TemporaryDirectory() as tmp:  # a daemon's first unwrap reads the file
            path = Path(tmp) / "encryption.key"
            key.write(path)
            line(
                f"unwrap incl. reading encryption.key, {suite.split('-')[0]}",
                timings(count // 4, lambda p=path, s=sealed: load_key(p).open_(s, AAD, INFO)),
                UNWRAP_TARGET_MS,
            )
        publics = [EncryptionKey.generate(suite).public for _ in range(MEMBERS)]
        assert len(set(publics)) == MEMBERS
        runs = []
        for _ in range(rounds):
            start = time.perf_counter()
            out = wrap_all(suite, publics, secret)
            runs.append(time.perf_counter() - start)
        assert len(out) == MEMBERS and len(out[0]) == SUITES[suite].enc_size + 32 + 16
        wrap[suite] = statistics.median(runs)
        verdict = "meets" if max(runs) <= WRAP_TARGET_S else "ABOVE"
        print(
            f"{'wrap 32 B to ' + str(MEMBERS) + ' members, ' + suite.split('-')[0]:<52}"
            f" median {wrap[suite] * 1000:8.1f} ms  worst {max(runs) * 1000:8.1f} ms"
            f" of {rounds}  {verdict} target"
        )
    hybrid, classic = DEFAULT_SUITE, X25519_SUITE
    print(
        f"ratios: hybrid/X25519 unwrap {unwrap[hybrid] / unwrap[classic]:.2f}x, wrap"
        f" {wrap[hybrid] / wrap[classic]:.2f}x; hybrid unwrap = {unwrap[hybrid] / base:.1f}"
        " Ed25519 sign+verify"
    )


if __name__ == "__main__":
    main()
