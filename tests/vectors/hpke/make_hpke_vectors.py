"""Write the HPKE vectors of this folder from checkouts of their two sources.

Usage: ``python tests/vectors/hpke/make_hpke_vectors.py RFC9180_CHECKOUT HPKE_PQ_CHECKOUT``

- ``rfc9180.json``: RFC 9180 Appendix A, read from ``draft-irtf-cfrg-hpke.md`` of
  https://github.com/cfrg/draft-irtf-cfrg-hpke (the RFC's source), for the base-mode
  (mode 0) setups of DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 with AES-128-GCM (A.1.1)
  and with ChaCha20Poly1305 (A.2.1).
- ``draft-ietf-hpke-pq.json``: ``test-vectors.json`` of https://github.com/hpkewg/hpke-pq
  (draft-ietf-hpke-pq), its MLKEM768-X25519 (KEM 0x647a), HKDF-SHA256, ChaCha20Poly1305
  entry.

Only data is kept (hex strings, as published): the recipient's key pair, ``enc``,
``info`` and the encryption of sequence number 0, the one a single-shot API produces.
Run once per upstream revision; never to "fix" a failing vector.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RFC_SUITES = (
    "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM",
    "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305",
)
KEPT = ("mode", "kem_id", "kdf_id", "aead_id", "info", "skRm", "pkRm", "enc")


def _commit(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _fields(block: str) -> dict[str, str]:
    """``name: hex`` pairs of one ~~~ block, hex continued over following lines."""
    out: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        m = re.fullmatch(r"([A-Za-z_ ]+):\s*([0-9a-f]*)", line.strip())
        if m:
            name = m.group(1)
            out[name] = m.group(2)
        elif name and re.fullmatch(r"[0-9a-f]+", line.strip()):
            out[name] += line.strip()
    return out


def rfc9180(md: str) -> list[dict[str, Any]]:
    out = []
    for title in RFC_SUITES:
        section = md.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        base = section.split("### Base Setup Information", 1)[1].split("\n### ", 1)[0]
        setup_block, rest = base.split("~~~", 2)[1:3]
        setup = _fields(setup_block)
        encryptions = rest.split("#### Encryptions", 1)[1].split("~~~")[1]
        first = _fields(encryptions.split("\n\n")[0])
        assert first["sequence number"] == "0", first
        entry: dict[str, Any] = {"suite": title, **{k: setup[k] for k in KEPT}}
        for k in ("mode", "kem_id", "kdf_id", "aead_id"):
            entry[k] = int(entry[k])
        entry["encryption"] = {k: first[k] for k in ("aad", "pt", "ct")}
        out.append(entry)
    return out


def hpke_pq(vectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (v,) = [x for x in vectors if (x["kem_id"], x["kdf_id"], x["aead_id"]) == (0x647A, 1, 3)]
    e = v["encryptions"][0]
    return [
        {
            "suite": "MLKEM768-X25519, HKDF-SHA256, ChaCha20Poly1305",
            **{k: v[k] for k in KEPT},
            "encryption": {k: e[k] for k in ("aad", "pt", "ct")},
        }
    ]


def main(rfc: Path, pq: Path) -> None:
    rfc_md = (rfc / "draft-irtf-cfrg-hpke.md").read_text()
    pq_json = json.loads((pq / "test-vectors.json").read_text())
    outputs = [
        ("rfc9180.json", "https://github.com/cfrg/draft-irtf-cfrg-hpke", rfc,
         "draft-irtf-cfrg-hpke.md", rfc9180(rfc_md)),
        ("draft-ietf-hpke-pq.json", "https://github.com/hpkewg/hpke-pq", pq,
         "test-vectors.json", hpke_pq(pq_json)),
    ]  # fmt: skip
    for name, repository, checkout, path, entries in outputs:
        source = {"repository": repository, "commit": _commit(checkout), "path": path}
        doc = {"source": source, "vectors": entries}
        (HERE / name).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
