"""Analyst files and the member CLI, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sighub import InputFileError, Kind
from sighub.client._analyst import read_rows
from sighub.client._errors import EXIT_BAD_INPUT
from sighub.hub._cli import main
from tests.conftest import NOW, SIGHUB

ROOT = Path(__file__).resolve().parents[1]


def sighub(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIGHUB, *args], capture_output=True, text=True,
        cwd=cwd or ROOT, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A member data directory with a signing key and a key for sg-csam."""
    data = tmp_path_factory.mktemp("cli") / "m"
    assert main(["keygen", "--data", str(data), "--name", "p"]) == 0
    assert main(["keygen", "--data", str(data), "--collab", "sg-csam"]) == 0
    return data


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
    keyed: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
    line: int,
    field: str,
) -> None:
    path = tmp_path / name
    path.write_text(content)
    out = tmp_path / "out.json"
    argv = ["bundle", str(path), "--collab", "sg-csam", "--data", str(keyed), "--out", str(out)]
    assert main(argv) == EXIT_BAD_INPUT  # in-process: the subprocess path is tested below
    assert f"{path}:{line}: field {field!r}" in capsys.readouterr().err
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
    assert wrong.returncode == EXIT_BAD_INPUT and "unknown key" in wrong.stderr
    raw = bytearray(env.read_bytes())
    raw[100] ^= 1
    env.write_bytes(bytes(raw))
    bad = sighub("verify", str(env), "--data", str(a))
    assert bad.returncode == EXIT_BAD_INPUT and "error: envelope" in bad.stderr


def test_bundle_without_collab_key_fails_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "a"
    sighub("keygen", "--data", str(data), "--name", "a")
    out = tmp_path / "e.json"
    res = sighub("bundle", "examples/indicators.csv", "--collab", "sg-csam", "--data", str(data),
                 "--out", str(out))  # fmt: skip
    assert res.returncode == EXIT_BAD_INPUT
    assert "no key for collaboration 'sg-csam'" in res.stderr
    assert not out.exists()


def test_canon_command_shows_form_and_spans() -> None:
    res = sighub("canon", "keyword", "S 3 L L 3 R and $eller", "--all")
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert lines[0] == {"kind": "keyword", "canon": "canon/1", "canonical": "seler and seler"}
    spans = {(x["candidate"], x["text"]) for x in lines[1:]}
    assert ("seler", "S 3 L L 3 R") in spans and ("seler", "$eller") in spans
    bad = sighub("canon", "emoji", "not emoji")
    assert bad.returncode == EXIT_BAD_INPUT and "is not an emoji" in bad.stderr


def test_demo_runs() -> None:
    res = subprocess.run([sys.executable, "examples/offline_publish.py"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "p6:" in res.stdout and "no shared indicator" in res.stdout
    assert "keyword 's e l l e r'" in res.stdout


def test_offline_commands_print_json_with_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*argv: str) -> dict[str, object]:
        capsys.readouterr()
        assert main(list(argv)) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1, out  # one document on one line
        doc: dict[str, object] = json.loads(out)
        return doc

    data = str(tmp_path / "a")
    made = run("keygen", "--data", data, "--name", "platform-a", "--json")
    assert made["member"] == "platform-a" and str(made["key_id"]).startswith("ed25519:")
    collab = run("keygen", "--data", data, "--collab", "sg-csam", "--json")
    assert collab["collaboration"] == "sg-csam" and collab["epoch"] == 0
    env = str(tmp_path / "e.json")
    csv = str(ROOT / "examples" / "indicators.csv")
    bundled = run("bundle", csv, "--collab", "sg-csam", "--data", data, "--out", env, "--json")
    assert bundled["indicators"] == 12 and bundled["envelope"] == env
    assert bundled["key_id"] == made["key_id"]
    checked = run("verify", env, "--identity", str(tmp_path / "a" / "member.json"), "--json")
    assert checked["ok"] is True and checked["indicators"] == 12
    assert checked["publisher"] == {"id": made["identity"], "name": "platform-a"}
    assert checked["by_kind"] == bundled["by_kind"]
    capsys.readouterr()
    assert main(["verify", env, "--data", data]) == 0  # without --json: the human lines
    assert capsys.readouterr().out.startswith(f"OK {env}: envelope ")
    assert main(["canon", "keyword", "S 3 L L 3 R", "--json"]) == 0
    as_json = capsys.readouterr().out
    assert main(["canon", "keyword", "S 3 L L 3 R"]) == 0
    assert as_json == capsys.readouterr().out  # JSON lines either way


def test_an_unreadable_identity_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "member.json"
    assert main(["verify", str(tmp_path / "e.json"), "--identity", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"error: {missing}: cannot read identity (No such file or directory)\n"
    )
    missing.write_text('{"a": ' * 100 + "1" + "}" * 100)  # over the document budget
    assert main(["verify", str(tmp_path / "e.json"), "--identity", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: ") and "depth" in err
