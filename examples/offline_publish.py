"""The offline publisher flow, end to end, on synthetic data.

1. platform A creates its signing key and receives the sg-csam blinding key;
2. its analysts' CSV (examples/indicators.csv) becomes a signed STIX envelope;
3. anyone holding A's public key verifies the envelope and reads the bundle;
4. a platform holding the same collaboration key blinds its own posts (examples/
   posts.jsonl) with canon/1 and finds which shared indicators they contain, with spans:
   obfuscated spellings match, unrelated words do not.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sighub import Form  # noqa: E402
from sighub.client._keys import MemberFiles  # noqa: E402
from sighub.hub._cli import main as sighub  # noqa: E402
from sighub.wire import Blinder, decode_payload, open_envelope, parse_bundle  # noqa: E402


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def check(code: int) -> None:
    if code != 0:
        raise SystemExit(f"demo failed: the last sighub command exited with {code}")


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="sighub-demo-") as tmp:
        data = Path(tmp) / "platform-a"
        envelope = Path(tmp) / "sg-csam.envelope.json"
        step("platform A: keys")
        check(sighub(["keygen", "--data", str(data), "--name", "platform-a"]))
        check(sighub(["keygen", "--data", str(data), "--collab", "sg-csam"]))
        step("platform A: analysts' CSV -> canon/1 -> blinded -> STIX bundle -> signed envelope")
        csv = str(ROOT / "examples" / "indicators.csv")
        check(sighub(["bundle", csv, "--collab", "sg-csam", "--data", str(data),
                       "--out", str(envelope)]))  # fmt: skip
        step("anyone with A's public key: verify")
        check(sighub(["verify", str(envelope), "--identity", str(data / "member.json")]))
        step("an analyst's debugging aid: sighub canon keyword 'S 3 L L 3 R'")
        check(sighub(["canon", "keyword", "S 3 L L 3 R"]))
        step("platform B (same collaboration key): scan its own posts")
        scan(data, envelope)


def scan(data: Path, envelope_path: Path) -> None:
    files = MemberFiles(data)
    ident = files.identity()
    env = open_envelope(envelope_path.read_bytes(), {ident.key_id: ident.public_key})
    bundle = parse_bundle(decode_payload(env))
    blinder = Blinder(files.current_collab_key(bundle.collaboration))
    blinded = {i.value: i for i in bundle.indicators if i.form is Form.BLINDED}
    patterns = [(re.compile(i.value), i) for i in bundle.indicators if i.form is Form.PATTERN]
    for line in (ROOT / "examples" / "posts.jsonl").read_text().splitlines():
        post = json.loads(line)
        text = post["text"]
        hits = []
        scanned = blinder.text(text)
        for k, digest in enumerate(scanned.digests):
            ind = blinded.get(digest.hex())
            if ind is not None:
                kind, start, end = scanned.candidate(k)
                hits.append(f"{kind} {text[start:end]!r} [{start},{end}] ({ind.description})")
        lowered = text.lower()  # patterns run over folded text; ASCII posts fold to lower()
        for rx, ind in patterns:
            hits += [f"pattern {m.group()!r} ({ind.description})" for m in rx.finditer(lowered)]
        print(f"{post['id']}: {text!r}")
        for hit in hits or ["no shared indicator"]:
            print(f"    {hit}")


if __name__ == "__main__":
    run()
