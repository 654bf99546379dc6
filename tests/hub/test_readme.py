"""The README's Python blocks run as written, in order, in one namespace, from a directory
holding ``./platform-b``: a member enrolled with --insecure at a loopback hub serving
plaintext, after platform-a published ``examples/indicators.csv``."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from sighub.client._enroll import enroll
from sighub.client._member import Member
from tests.hub.conftest import ROOT, HubProcess


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_readme_python_blocks_run_as_written(tmp_path: Path) -> None:
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    hub = HubProcess(tmp_path / "hub")
    hub.start(insecure=True)
    cwd = Path.cwd()
    try:
        assert hub.admin_cli("--insecure", "collab", "add", "sg-csam") == 0
        for name in ("platform-a", "platform-b"):
            out = tmp_path / f"{name}.enroll.json"
            args = ("member", "add", name, "--roles", "publisher,subscriber", "--out", str(out))
            assert hub.admin_cli("--insecure", *args) == 0
            enroll(out, tmp_path / name, insecure=True, address=hub.address)
            assert hub.admin_cli("--insecure", "collab", "join", "sg-csam", name) == 0
        Member(tmp_path / "platform-a").publish_file(ROOT / "examples/indicators.csv", "sg-csam")
        os.chdir(tmp_path)
        printed = io.StringIO()
        namespace: dict[str, object] = {"__name__": "readme"}
        with contextlib.redirect_stdout(printed):
            for block in blocks:
                exec(compile(block, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
        hub.stop()
    lines = printed.getvalue().splitlines()
    assert any("S3LL3R" in x and "platform-a" in x for x in lines), lines
    assert any("on chapter 14" in x and "amber" in x for x in lines), lines
