"""The ``sighub`` command line as a contract: help on every option and command, the
connection options accepted in the same place everywhere, --json on every command that
prints a result, exit codes by cause, and one clear line (never a traceback) for a data
directory that is not what the command needs."""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sighub.client._cli_checkpoint import ENV_WITNESS_KEYS, ENV_WITNESSES
from sighub.client._cliargs import ENV_ADMIN_CRED, ENV_HUB, ENV_INSECURE
from sighub.client._errors import EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_UNREACHABLE
from sighub.client._proto import admin_pb2, admin_pb2_grpc
from sighub.client._rpc import (
    Credential,
    HubClient,
    HubRejected,
    HubUnreachable,
    call,
    open_channel,
)
from sighub.hub._cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
Leaf = tuple[tuple[str, ...], argparse.ArgumentParser]

# Leaves that talk to a hub (every `admin ...` leaf is added below).
HUB_TALKING = {
    ("sync",),
    ("publish",),
    ("republish",),
    ("revoke",),
    ("member", "enroll"),
    ("member", "rotate-key"),
    ("member", "rotate-encryption-key"),
    ("member", "renew-cert"),
    ("checkpoint", "compare"),
    ("collab", "rekey"),
    ("collab", "status"),
}
# Leaves that print no result document: a server, and match's own JSON lines protocol.
NO_RESULT = {("hub", "serve"), ("match",)}
# Leaves whose --data directory the command creates (so a missing one is fine).
CREATES_DATA = {("keygen",), ("member", "enroll"), ("hub", "init")}
# Leaves that check their --data directory themselves (a restore fills a bare one).
CHECKS_ITSELF = {("hub", "restore")}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's SIGHUB_* settings must not leak into these tests."""
    for name in (ENV_HUB, ENV_INSECURE, ENV_ADMIN_CRED, ENV_WITNESSES, ENV_WITNESS_KEYS):
        monkeypatch.delenv(name, raising=False)


def _subparsers(p: argparse.ArgumentParser) -> list[argparse._SubParsersAction[Any]]:
    return [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]


def walk(
    p: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, bool]]:
    """Every parser in the tree: (path, parser, is_leaf)."""
    subs = _subparsers(p)
    yield path, p, not subs
    for s in subs:
        for name, child in s.choices.items():
            yield from walk(child, (*path, name))


def leaves() -> list[Leaf]:
    return [(path, p) for path, p, leaf in walk(build_parser()) if leaf]


def options(p: argparse.ArgumentParser) -> set[str]:
    return {o for a in p._actions for o in a.option_strings}


def hub_talking() -> set[tuple[str, ...]]:
    return HUB_TALKING | {path for path, _ in leaves() if path[0] == "admin"}


def test_the_tree_is_the_one_expected() -> None:
    """Guards the other tests against walking an empty or truncated tree."""
    paths = {path for path, _ in leaves()}
    assert len(paths) >= 25
    assert (hub_talking() | NO_RESULT | CREATES_DATA) <= paths
    assert ("admin", "member", "list") in paths and ("bundle",) in paths


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, p, _ in walk(build_parser()):
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            if isinstance(a, argparse._SubParsersAction):
                helped = {c.dest: c.help for c in a._choices_actions}
                missing += [f"{' '.join((*path, n))}" for n in a.choices if not helped.get(n)]
            elif not a.help or a.help == argparse.SUPPRESS:
                missing.append(f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}")
    assert not missing, f"no help text: {missing}"


def test_every_hub_talking_command_takes_hub_and_insecure_after_it() -> None:
    parser = build_parser()
    for path in sorted(hub_talking()):
        leaf = dict(leaves())[path]
        assert {"--hub", "--insecure"} <= options(leaf), path
        argv = _sample_argv(path, leaf, "/srv/x")
        args = parser.parse_args([*argv, "--hub", "127.0.0.1:9", "--insecure"])
        assert (args.hub, args.insecure) == ("127.0.0.1:9", True), path
        args = parser.parse_args(argv)
        assert (args.hub, args.insecure) == (None, False), path


def test_hub_and_insecure_come_together() -> None:
    """A leaf that takes --hub also takes --insecure (hub serve's --insecure serves)."""
    for path, leaf in leaves():
        if "--hub" in options(leaf):
            assert path in hub_talking() and "--insecure" in options(leaf), path


def test_every_command_that_prints_a_result_takes_json() -> None:
    lacking = [p for p, leaf in leaves() if p not in NO_RESULT and "--json" not in options(leaf)]
    assert not lacking, f"no --json: {lacking}"


def test_every_data_option_declares_what_it_needs() -> None:
    """check_data can only refuse a directory whose command said what it needs."""
    for path, leaf in leaves():
        if "--data" in options(leaf):
            assert "data_needs" in leaf._defaults, path
            unchecked = path in CREATES_DATA | CHECKS_ITSELF
            assert (leaf._defaults["data_needs"] is None) == unchecked, path


@pytest.mark.parametrize(
    ("argv", "hub", "insecure"),
    [
        (["member", "--insecure", "--hub", "a:1", "rotate-key", "--data", "d"], "a:1", True),
        (["member", "--hub", "a:1", "rotate-key", "--data", "d", "--hub", "b:2"], "b:2", False),
        (["member", "rotate-key", "--data", "d", "--insecure"], None, True),
        (["admin", "--cred", "c", "--insecure", "member", "list"], None, True),
        (["admin", "--cred", "c", "--hub", "a:1", "member", "list", "--hub", "b:2"], "b:2", False),
        (["admin", "member", "list", "--cred", "c", "--hub", "b:2"], "b:2", False),
    ],
)
def test_group_position_still_works_and_the_leaf_wins(
    argv: list[str], hub: str | None, insecure: bool
) -> None:
    args = build_parser().parse_args(argv)
    assert (args.hub, args.insecure) == (hub, insecure)
    if argv[0] == "admin":
        assert args.cred == "c"


def test_leaf_cred_wins_over_the_group_one() -> None:
    args = build_parser().parse_args(["admin", "--cred", "a", "audit", "--cred", "b"])
    assert args.cred == "b"


@pytest.mark.parametrize(
    ("value", "insecure"),
    [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False), ("maybe", False)],
)
def test_connection_defaults_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, insecure: bool
) -> None:
    monkeypatch.setenv(ENV_HUB, "hub.example.org:7443")
    monkeypatch.setenv(ENV_INSECURE, value)
    monkeypatch.setenv(ENV_ADMIN_CRED, "/srv/hub/admin")
    for argv in (
        ["sync", "--data", "d"],
        ["member", "rotate-key", "--data", "d"],
        ["admin", "member", "list"],
    ):
        args = build_parser().parse_args(argv)
        assert (args.hub, args.insecure) == ("hub.example.org:7443", insecure), argv
    assert build_parser().parse_args(["admin", "audit"]).cred == "/srv/hub/admin"
    given = build_parser().parse_args(["sync", "--data", "d", "--hub", "h:1"])
    assert given.hub == "h:1"  # a flag beats the environment


# -- exit codes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hub data directory, not served: its admin credential reaches nothing."""
    data = tmp_path_factory.mktemp("contract") / "hub"
    assert main(["hub", "init", "--data", str(data), "--name", "contract-hub"]) == 0
    return data


@pytest.mark.parametrize("insecure", [[], ["--insecure"]])
def test_an_unreachable_hub_exits_4_and_names_the_address(
    hub_dir: Path, capsys: pytest.CaptureFixture[str], insecure: list[str]
) -> None:
    capsys.readouterr()
    address = f"127.0.0.1:{_free_port()}"
    argv = ["admin", "member", "list", "--cred", str(hub_dir / "admin"), "--hub", address]
    assert main([*argv, *insecure]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert f"hub {address} unreachable (UNAVAILABLE)" in err and "--insecure" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_hub_that_never_answers_is_unreachable_too(hub_dir: Path) -> None:
    """A listener that accepts and stays silent: the deadline passes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        cred = Credential.load(hub_dir / "admin")
        channel = open_channel(cred, insecure=True, address=address)
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        try:
            with pytest.raises(HubUnreachable) as info:
                call(lambda: stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=0.5), address)
        finally:
            channel.close()
    assert info.value.code in HubUnreachable.CODES and info.value.exit_code == EXIT_UNREACHABLE
    assert address in str(info.value)


def test_hub_client_names_its_address_when_unreachable(hub_dir: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    cred = Credential.load(hub_dir / "admin")
    moved = Credential(cred.folder, address, cred.member, cred.bearer_token, cred.hub_public_key)
    with HubClient.connect(moved) as client, pytest.raises(HubUnreachable) as info:
        client.key_directory()
    assert info.value.address == address and info.value.code == "UNAVAILABLE"


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "m"
    assert main(["keygen", "--data", str(data), "--name", "platform-a"]) == 0
    capsys.readouterr()
    missing = tmp_path / "absent.envelope.json"
    assert main(["verify", str(missing), "--data", str(data)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == f"error: {missing}: No such file or directory\n"


def test_a_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["sync"])
    assert info.value.code == EXIT_BAD_INPUT


def test_an_admin_command_without_a_credential_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["admin", "member", "list"]) == EXIT_BAD_INPUT
    assert ENV_ADMIN_CRED in capsys.readouterr().err


def test_errors_map_to_their_exit_codes() -> None:
    assert HubRejected("NOT_FOUND", "x").exit_code == EXIT_REFUSED
    assert issubclass(HubUnreachable, HubRejected)  # callers catching refusals still do
    assert {c.name for c in grpc.StatusCode if c.name in HubUnreachable.CODES} == {
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
    }


# -- data directories ---------------------------------------------------------------------


def _sample_argv(path: tuple[str, ...], leaf: argparse.ArgumentParser, data: str) -> list[str]:
    """The smallest command line the parser accepts, with ``data`` as --data/--cred."""
    argv = list(path)
    for a in leaf._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        value = str(next(iter(a.choices))) if a.choices else "1" if a.type is int else "x"
        if a.dest in ("data", "cred"):
            argv += [a.option_strings[0], data]
        elif not a.option_strings:
            argv.append(value)
        elif a.required:
            argv += [a.option_strings[0], value]
    return argv


def _needs_a_directory() -> list[Leaf]:
    return [
        (path, leaf)
        for path, leaf in leaves()
        if path not in CREATES_DATA and options(leaf) & {"--data", "--cred"}
    ]


def test_the_directory_checks_cover_the_commands() -> None:
    covered = {path for path, _ in _needs_a_directory()}
    expected = {("sync",), ("status",), ("match",), ("publish",), ("revoke",), ("bundle",)}
    assert expected | {("verify",), ("hub", "serve"), ("member", "rotate-key")} <= covered
    assert {p for p in hub_talking() if p[0] == "admin"} <= covered


@pytest.mark.parametrize("state", ["absent", "empty", "file"])
def test_a_wrong_data_directory_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    target = tmp_path / state
    if state == "empty":
        target.mkdir()
    elif state == "file":
        target.write_text("not a directory\n")
    words = {"absent": "no such directory", "empty": "here (missing", "file": "not a directory"}
    for path, leaf in _needs_a_directory():
        capsys.readouterr()
        argv = _sample_argv(path, leaf, str(target))
        assert main(argv) == EXIT_BAD_INPUT, argv
        out, err = capsys.readouterr()
        assert err.startswith(f"error: {target}") and err.count("\n") == 1, (argv, err)
        assert "Traceback" not in err and out == "", (argv, err)
        assert path in CHECKS_ITSELF or words[state] in err, (argv, err)
    # Nothing was created in, or instead of, the directory.
    if state == "absent":
        assert not target.exists()
    elif state == "empty":
        assert not any(target.iterdir())
    else:
        assert target.read_text() == "not a directory\n"


def test_the_message_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--data", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"run `sighub member enroll FILE --data {tmp_path}` first" in err
    assert main(["hub", "serve", "--data", str(tmp_path)]) == EXIT_BAD_INPUT
    assert f"run `sighub hub init --data {tmp_path}` first" in capsys.readouterr().err


# -- --json output, against a running hub ---------------------------------------------------


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # one document, one line
    return json.loads(out)


def test_json_and_human_output_of_the_hub_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.hub.conftest import HubProcess

    h = HubProcess(tmp_path / "hub")
    h.start(insecure=True)
    try:
        cred, hub = ["--cred", str(h.data / "admin")], ["--hub", h.address, "--insecure"]
        assert main(["admin", "collab", "add", "sg-csam", *cred, *hub]) == 0
        capsys.readouterr()
        enroll_file = tmp_path / "m.enroll.json"
        argv = ["admin", "member", "add", "m", "--roles", "publisher,subscriber"]
        assert main([*argv, "--out", str(enroll_file), "--json", *cred, *hub]) == 0
        added = json.loads(capsys.readouterr().out)
        assert added["enrollment_file"] == str(enroll_file) and added["member"]["name"] == "m"
        before = h.state()
        assert main(["admin", "member", "show", "nobody", *cred, *hub]) == EXIT_REFUSED
        assert "NOT_FOUND" in capsys.readouterr().err and h.state() == before

        data = tmp_path / "m"
        assert main(["member", "enroll", str(enroll_file), "--data", str(data), *hub]) == 0
        assert capsys.readouterr().out.startswith("enrolled m (identity--")
        assert main(["admin", "collab", "join", "sg-csam", "m", *cred, *hub]) == 0
        capsys.readouterr()
        member = ["--data", str(data), *hub]
        csv = str(ROOT / "examples" / "indicators.csv")
        assert main(["publish", csv, "--collab", "sg-csam", *member, "--json"]) == 0
        published = _json(capsys)
        assert published["indicators"] == 12 and published["duplicate"] is False

        assert main(["sync", *member, "--workers", "0", "--json"]) == 0
        synced = _json(capsys)
        assert synced["cursor"] == published["sequence"] and synced["refused"] == 0
        assert main(["sync", *member, "--workers", "0"]) == 0
        assert capsys.readouterr().out.startswith(f"synced to cursor {synced['cursor']}: ")
        assert main(["status", "--data", str(data), "--json"]) == 0
        status = _json(capsys)
        assert status["cursor"] == synced["cursor"] and status["active"] == 12
        assert main(["status", "--data", str(data)]) == 0
        assert f"cursor: {synced['cursor']}\n" in capsys.readouterr().out

        assert main(["member", "rotate-key", *member, "--json"]) == 0
        rotated = _json(capsys)
        assert rotated["key_id"] != rotated["previous_key_id"]
        assert main(["member", "rotate-encryption-key", *member, "--json"]) == 0
        encryption = _json(capsys)
        assert encryption["signing_key_id"] == rotated["key_id"]
        assert encryption["previous_encryption_key_id"].startswith("hpke:")
    finally:
        h.stop()
