"""Member-held collaboration keys (issue 11, second slice): what a steward and a member
do, end to end in ``sighub.client._wraps``, one core.

Targets: wrapping an epoch for 500 members (``wrap_epoch``: 500 HPKE seals with the AAD
binding collaboration, epoch, recipient and key, and 500 Ed25519 signatures) <= 1 s;
unwrapping on a member (``unwrap``: the steward's signature, the HPKE open, the
commitment) <= 5 ms.  Run: ``.venv/bin/python bench/bench_wraps.py [rounds]``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import cryptography
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._hpke import DEFAULT_SUITE, X25519_SUITE, EncryptionKey
from sighub.client._wraps import Recipient, new_secret, unwrap, wrap_epoch

MEMBERS = 500
WRAP_TARGET_S = 1.0
UNWRAP_TARGET_MS = 5.0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(
        f"Python {platform.python_version()} on {platform.machine()}, cryptography"
        f" {cryptography.__version__}, {os.cpu_count()} CPUs (one used)"
    )
    steward = Ed25519PrivateKey.generate()
    public = steward.public_key().public_bytes_raw()
    for suite in (DEFAULT_SUITE, X25519_SUITE):
        keys = [EncryptionKey.generate(suite) for _ in range(MEMBERS)]
        recipients = [Recipient(f"m{i}", k.suite, k.public) for i, k in enumerate(keys)]
        wraps_s = []
        for _ in range(rounds):
            secret = new_secret()
            start = time.perf_counter()
            wraps = wrap_epoch(steward, "stew", "sg-csam", 7, secret, recipients)
            wraps_s.append(time.perf_counter() - start)
        unwrap_ms = []
        for i in range(2000):
            w = wraps[i % MEMBERS]
            start = time.perf_counter()
            unwrap(w, w.recipient, keys[i % MEMBERS], lambda s, k: public)
            unwrap_ms.append((time.perf_counter() - start) * 1e3)
        unwrap_ms.sort()
        wrap = statistics.median(wraps_s)
        p50, p99 = unwrap_ms[len(unwrap_ms) // 2], unwrap_ms[int(len(unwrap_ms) * 0.99)]
        print(
            f"{suite}: wrap an epoch for {MEMBERS}: median {wrap * 1e3:.0f} ms, worst"
            f" {max(wraps_s) * 1e3:.0f} ms ({'meets' if max(wraps_s) <= WRAP_TARGET_S else 'ABOVE'}"
            f" <= {WRAP_TARGET_S} s); unwrap p50 {p50:.3f} ms p99 {p99:.3f} ms"
            f" ({'meets' if p99 <= UNWRAP_TARGET_MS else 'ABOVE'} <= {UNWRAP_TARGET_MS} ms);"
            f" {sum(len(w.sealed) + len(w.signature) for w in wraps) // 1024} KiB of wraps"
        )


if __name__ == "__main__":
    main()
