"""Write tests/vectors/merkle-rfc9162.json from a checkout of transparency-dev/merkle.

Usage: ``python tests/vectors/make_merkle_vectors.py CHECKOUT [COMMIT]``.  Only data is
taken (hashes, sizes, indexes, expected outcomes), converted to hex and 0-based indexes; no
code.  Run once per upstream revision; never to "fix" a failing vector.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("merkle-rfc9162.json")
HEX = re.compile(r'(?:hd|dh)\("([0-9a-f]*)"')


def go_block(text: str, start: str) -> str:
    """The text from ``start`` to its matching closing brace."""
    i = text.index(start) + len(start)
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    raise ValueError(f"unbalanced block after {start!r}")


def proof_table(block: str, first: str, second: str) -> list[dict[str, Any]]:
    """Entries ``{a, b, nil}`` or ``{a, b, [][]byte{dh(...), ...}}`` of a Go table."""
    entries = re.findall(r"\{(\d+), (\d+), (nil|\[\]\[\]byte\{.*?\})\}", block, re.S)
    return [{first: int(a), second: int(b), "proof": HEX.findall(p)} for a, b, p in entries]


def b64hex(value: str | None) -> str:
    return "" if value is None else base64.b64decode(value).hex()


def probes(checkout: Path, kind: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((checkout / "testdata" / kind).rglob("*.json")):
        raw = json.loads(path.read_text())
        probe: dict[str, Any] = {"file": str(path.relative_to(checkout)), "desc": raw["desc"]}
        if kind == "inclusion":
            probe |= {
                "index": raw["leafIdx"],
                "size": raw["treeSize"],
                "leaf_hash": b64hex(raw["leafHash"]),
                "root": b64hex(raw["root"]),
            }
        else:
            probe |= {
                "size1": raw["size1"],
                "size2": raw["size2"],
                "root1": b64hex(raw["root1"]),
                "root2": b64hex(raw["root2"]),
            }
        probe["proof"] = [b64hex(p) for p in raw["proof"] or []]
        probe["valid"] = not raw["wantErr"]
        out.append(probe)
    return out


def main(checkout: Path, commit: str) -> None:
    constants = (checkout / "testonly" / "constants.go").read_text()
    leaves = HEX.findall(go_block(constants, "func LeafInputs() [][]byte {"))
    levels = go_block(constants, "func NodeHashes() [][][]byte {").split("}, {")
    nodes = [HEX.findall(level) for level in levels]
    empty = HEX.findall(go_block(constants, "func EmptyRootHash() []byte {"))
    roots = empty + HEX.findall(go_block(constants, "func RootHashes() [][]byte {"))
    proofgen = (checkout / "cmd" / "proofgen" / "main.go").read_text()
    inclusion = proof_table(go_block(proofgen, "inclusionProofs = []inclusionProofTestVector{"),
                            "index", "size")  # fmt: skip
    for vector in inclusion:  # upstream numbers leaves from 1 in this table
        vector["index"] -= 1
    consistency = proof_table(go_block(proofgen, "consistencyProofs = []consistencyTestVector{"),
                              "size1", "size2")  # fmt: skip
    doc = {
        "about": (
            "RFC 9162 (SHA-256) Merkle tree reference vectors, copied as data from"
            " transparency-dev/merkle (Apache-2.0) at the commit below by"
            " tests/vectors/make_merkle_vectors.py: the 8 standard leaves, the hashes of all"
            " perfect subtrees of the 8-leaf tree by level, the roots of sizes 0..8, the"
            " inclusion and consistency proofs of cmd/proofgen (leaf indexes made 0-based),"
            " and every inclusion/consistency probe of testdata/ (valid = not wantErr)."
            " Hashes are hex; base64 from the probes was converted."
        ),
        "source": {
            "repository": "https://github.com/transparency-dev/merkle",
            "commit": commit,
            "files": [
                "testonly/constants.go",
                "cmd/proofgen/main.go",
                "testdata/inclusion/**/*.json",
                "testdata/consistency/**/*.json",
            ],
        },
        "leaves": leaves,
        "nodes": nodes,
        "roots": roots,
        "inclusion": inclusion,
        "consistency": consistency,
        "inclusion_probes": probes(checkout, "inclusion"),
        "consistency_probes": probes(checkout, "consistency"),
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "unknown")
