"""Write tests/vectors/hops.json: hop records two parties must compute alike.

Usage: ``python tests/vectors/make_hop_vectors.py``.  Every input is fixed (synthetic
seeds, times, bytes) and Ed25519 is deterministic, so the file is the same on every run;
run it once when the hop format is defined, never to "fix" a failing vector.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from pathlib import Path

from sighub.client._checkpoint import Checkpoint, sign_checkpoint
from sighub.client._hops import encode_hops, hop_statement, hops_digest, sign_hop
from sighub.client._leaves import envelope_leaf
from sighub.client._merkle import inclusion_proof, leaf_hash, root
from sighub.client._note import Ed25519Signer

OUT = Path(__file__).with_name("hops.json")
HUBS = {"sighub/industry": 1, "sighub/regional": 2, "sighub/hotline": 3}
# The collaboration's name in each source's log (the regional hub maps it to its own).
NAMES = ["sg-csam", "sg-regional"]


def signer(origin: str) -> Ed25519Signer:
    return Ed25519Signer(origin, bytes([HUBS[origin]]) * 32)


def main() -> None:
    envelope = b'{"payloadType":"application/stix+json;version=2.1","synthetic":"s3ller"}'
    route = ["sighub/industry", "sighub/regional", "sighub/hotline"]
    hops = []
    out_hops = []
    for i, (source, relay) in enumerate(itertools.pairwise(route)):
        size, seq, n = 40 + 10 * i, 30 + i, 7 + i
        # the source's log: synthetic leaves, the envelope's own (with the hops before) at seq
        leaves = [hashlib.sha256(f"leaf {k} of {source}".encode()).digest() for k in range(size)]
        leaves[seq - 1] = leaf_hash(envelope_leaf(NAMES[i], envelope, n, encode_hops(hops)))
        note = sign_checkpoint(Checkpoint(source, size, root(leaves)).with_time(
            1_795_000_000 + i), signer(source))  # fmt: skip
        path = inclusion_proof(seq - 1, size, leaves)
        received = f"2026-11-28T12:00:0{i}.000Z"
        statement = hop_statement(envelope, hops, relay, source, seq, note, received, n, path)
        hop = sign_hop(signer(relay).sign, relay, envelope, hops, source, seq, note, received, n,
                       path)  # fmt: skip
        out_hops.append({"statement": statement.hex(), "record": hop.fields()})
        hops.append(hop)
    doc = {
        "description": "sighub hop records (docs/federation.md): each hop's signed statement"
        " and record (with the envelope's number and inclusion path in its source's tree),"
        " the encoded list and its digest; the keys are the log keys of the hubs, seeds"
        " repeated bytes 1, 2, 3; names: the collaboration in each source's log",
        "log_keys": {o: base64.b64encode(signer(o).public_key).decode() for o in HUBS},
        "seeds": {o: HUBS[o] for o in HUBS},
        "names": NAMES,
        "envelope": base64.b64encode(envelope).decode(),
        "hops": out_hops,
        "encoded": encode_hops(hops).decode(),
        "digest": hops_digest(hops),
    }
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
