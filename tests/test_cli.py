"""Analyst files and the member CLI, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from client import InputFileError, Kind
from client._analyst import read_rows
from tests.conftest import NOW, SIGHUB

ROOT = Path(__file__).resolve().parents[1]


def sighub(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIGHUB, *args], capture_output=True, text=True,
        cwd=cwd or ROOT, timeout=60, check=False,
    )  # fmt: skip


def test_example_file_reads(tmp_path: Path) -> None:
    rows = read_rows(ROOT / "examples" / "indicators.csv", now=NOW)
    assert {r.kind for r in rows} == set(Kind)
    assert rows[0].value == "seler" and rows[0].line == 2


@pytest.mark.parametrize(
    ("name", "content", "line", "field"),
    [
        ("a.csv", "kind,value\nkeyword,seller\nphone,123\n", 3, "kind"),
        ("a.csv", "kind,value\nkeyword,\n", 2, "value"),
        ("a.csv", "kind,value,confidence\nkeyword,x,200\n", 2, "confidence"),
        ("a.csv", "kind,value,ttl\nkeyword,x,30y\n", 2, "ttl"),
        ("a.csv", "kind,value,expires\nkeyword,x,2001-01-01\n", 2, "expires"),
        ("a.csv", "kind,value,form\npayment,(a+)+b,pattern\n", 2, "value"),
        ("a.csv", "kind,value,tlp\nurl,x.carrd.co,white\n", 2, "tlp"),
        ("a.csv", "kind,value,color\nurl,x.carrd.co,red\n", 2, "color"),
        ("a.csv", "kind,value,labels\nurl,x.carrd.co,Bad Label\n", 2, "labels"),
        ("a.csv", "kind,value\n", 0, "-"),
        (
            "a.jsonl",
            '{"kind": "keyword", "value": "x"}\n{"kind": "emoji", "value": "no"}\n',
            2,
            "value",
        ),
        ("a.jsonl", '{"kind": "keyword", "value": "x"}\nnot json\n', 2, "-"),
        ("a.jsonl", '{"kind": "keyword", "value": ["x"]}\n', 1, "value"),
        ("a.txt", "kind,value\n", 0, "-"),
    ],
)
def test_bad_rows_name_file_line_and_field(
    tmp_path: Path, name: str, content: str, line: int, field: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    data = tmp_path / "m"
    assert sighub("keygen", "--data", str(data), "--name", "p").returncode == 0
    assert sighub("keygen", "--data", str(data), "--collab", "sg-csam").returncode == 0
    out = tmp_path / "out.json"
    result = sighub(
        "bundle", str(path), "--collab", "sg-csam", "--data", str(data), "--out", str(out)
    )
    assert result.returncode == 1
    assert f"{path}:{line}: field {field!r}" in result.stderr
    assert not out.exists()  # nothing written


def test_errors_are_typed() -> None:
    with pytest.raises(InputFileError):
        read_rows(Path("/nonexistent.csv"))


def test_keygen_bundle_verify_round_trip(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for data, name in ((a, "platform-a"), (b, "platform-b")):
        assert sighub("keygen", "--data", str(data), "--name", name).returncode == 0
    assert sighub("keygen", "--data", str(a), "--collab", "sg-csam").returncode == 0
    env = tmp_path / "e.json"
    done = sighub("bundle", "examples/indicators.csv", "--collab", "sg-csam", "--data", str(a),
                  "--out", str(env))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "12 indicators" in done.stdout
    ok = sighub("verify", str(env), "--identity", str(a / "member.json"))
    assert ok.returncode == 0 and "OK" in ok.stdout and "platform-a" in ok.stdout
    wrong = sighub("verify", str(env), "--data", str(b))
    assert wrong.returncode == 1 and "unknown key" in wrong.stderr
    raw = bytearray(env.read_bytes())
    raw[100] ^= 1
    env.write_bytes(bytes(raw))
    bad = sighub("verify", str(env), "--data", str(a))
    assert bad.returncode == 1 and "error: envelope" in bad.stderr


def test_bundle_without_collab_key_fails_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "a"
    sighub("keygen", "--data", str(data), "--name", "a")
    out = tmp_path / "e.json"
    res = sighub("bundle", "examples/indicators.csv", "--collab", "sg-csam", "--data", str(data),
                 "--out", str(out))  # fmt: skip
    assert res.returncode == 1 and "no key for collaboration 'sg-csam'" in res.stderr
    assert not out.exists()


def test_canon_command_shows_form_and_spans() -> None:
    res = sighub("canon", "keyword", "S 3 L L 3 R and $eller", "--all")
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert lines[0] == {"kind": "keyword", "canonical": "seler and seler"}
    spans = {(x["candidate"], x["text"]) for x in lines[1:]}
    assert ("seler", "S 3 L L 3 R") in spans and ("seler", "$eller") in spans
    bad = sighub("canon", "emoji", "not emoji")
    assert bad.returncode == 1 and "is not an emoji" in bad.stderr


def test_demo_runs() -> None:
    res = subprocess.run([sys.executable, "examples/offline_publish.py"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "p6:" in res.stdout and "no shared indicator" in res.stdout
    assert "keyword 's e l l e r'" in res.stdout
