"""Build + canonicalize + sign a bundle of 1,000 indicators, and verify it.

Targets (issue 2): build + canonicalize + sign <= 100 ms; verify <= 5 ms.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._corpus
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub import Form, Indicator, Kind, Publisher
from sighub.client._envelope import key_id, open_envelope, seal
from sighub.client._model import now_ms
from sighub.client._stix import build_bundle, new_indicator_id
from sighub.wire import Blinder, CollabKey

KINDS = [Kind.KEYWORD, Kind.HASHTAG, Kind.EMOJI, Kind.URL, Kind.PAYMENT]


def _indicators(publisher: Publisher, digests: list[str]) -> list[Indicator]:
    now = now_ms()
    return [
        Indicator(
            id=new_indicator_id(),
            kind=KINDS[i % 5],
            form=Form.BLINDED,
            value=d,
            collaboration="sg-csam",
            publisher=publisher,
            valid_from=now,
            valid_until=now + timedelta(days=30),
            created=now,
            modified=now,
            key_epoch=0,
            confidence=70,
            labels=("seller-term",),
            description="synthetic benchmark indicator",
        )
        for i, d in enumerate(digests)
    ]


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()}")
    key = Ed25519PrivateKey.generate()
    keys = {key_id(key.public_key()): key.public_key()}
    publisher = Publisher("identity--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "platform-a")
    blinder = Blinder(CollabKey("sg-csam", 0, bytes(32)))
    digests = [blinder.value(Kind.KEYWORD, f"s3ll3r variant {i}") for i in range(1000)]
    build, verify = [], []
    raw = b""
    for _ in range(15):
        start = time.perf_counter()
        raw = seal(build_bundle(publisher, _indicators(publisher, digests)), key)
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        open_envelope(raw, keys)
        verify.append(time.perf_counter() - start)
    b, v = statistics.median(build) * 1e3, statistics.median(verify) * 1e3
    print(f"1,000 indicators, envelope {len(raw) / 1e6:.2f} MB")
    print(f"build + canonicalize + sign: {b:6.1f} ms (median of 15)  target <= 100: "
          f"{'meets' if b <= 100 else 'ABOVE'}")  # fmt: skip
    print(f"verify:                      {v:6.1f} ms (median of 15)  target <= 5:   "
          f"{'meets' if v <= 5 else 'ABOVE'}")  # fmt: skip


if __name__ == "__main__":
    main()
