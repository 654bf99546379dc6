"""Regenerate the committed protobuf code: ``python proto/gen.py [OUT]`` (``make proto``).

Runs grpc_tools.protoc with the mypy-protobuf plugin over ``proto/sighub/v1/*.proto`` and
rewrites the generated imports to this package.  A test runs it into a temporary folder
and compares with the committed files.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto"
OUT = ROOT / "src" / "sighub" / "client" / "_proto"


def generate(out: Path) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        sources = sorted(str(p.relative_to(PROTO)) for p in PROTO.glob("sighub/v1/*.proto"))
        bindir = Path(sys.executable).parent
        args = ["protoc", f"-I{PROTO}", f"-I{protoc_include()}", f"--python_out={tmp}",
                f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
                f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
                f"--grpc_python_out={tmp}", f"--mypy_out={tmp}", f"--mypy_grpc_out={tmp}",
                *sources]  # fmt: skip
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        written = []
        for path in sorted(Path(tmp, "sighub", "v1").iterdir()):
            text = re.sub(
                r"\bfrom sighub\.v1 import", "from sighub.client._proto import", path.read_text()
            )
            text = re.sub(r"\bimport sighub\.v1\.(\w+)", r"import sighub.client._proto.\1", text)
            if path.suffix == ".pyi":
                text = text.replace("sighub.v1.", "sighub.client._proto.")
            target = out / path.name
            target.write_text(text)
            written.append(target)
        return written


def protoc_include() -> str:
    return str(Path(grpc_tools.__file__).parent / "_proto")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    target.mkdir(parents=True, exist_ok=True)
    for p in generate(target):
        print(f"wrote {p}")
