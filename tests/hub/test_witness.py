"""Witnesses (issue 10, item 7), on real hub processes: a member's daemon co-signs the
checkpoints it verified, the hub keeps them (refusing, with nothing changed, every
cosignature it should not vouch for) and serves them; a member requiring K witnesses
syncs or refuses; ``checkpoint show`` / ``compare``.  Against a lying hub that shows two
members two different trees: the witness check and ``compare`` catch it, both signed notes
kept as evidence."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sighub.client._checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from sighub.client._daemon import LOCAL_DB, SyncDaemon, SyncReport
from sighub.client._errors import EXIT_ALARM, EXIT_BAD_INPUT
from sighub.client._logcheck import AlarmKind, LogAlarm, hub_key
from sighub.client._logguard import AlarmRecorded
from sighub.client._note import Ed25519Signer, parse_note
from sighub.client._rpc import Credential, HubRejected
from sighub.client._witness import WITNESS_KEY_FILE, WitnessPolicy, witness_key
from sighub.hub._cli import main as sighub
from sighub.hub._server import HubPaths, load_log_signer
from sighub.hub._store import TLOG
from sighub.hub._witness import MAX_KEYS_PER_MEMBER
from tests.hub.conftest import HubProcess, Member, running_world
from tests.hub.lyinghub import FakeLog, LyingHub


@pytest.fixture(scope="module")
def ww(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``running_world`` with publishers pub, wit and wit2."""
    with running_world(
        tmp_path_factory.mktemp("ww"), ("pub", "wit", "wit2"), publishes_per_minute=6000,
        burst=1000,
    ) as w:  # fmt: skip
        yield w


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="sighub.sync")


def _copy(m: Member, to: Path) -> Path:
    """A second data directory of member ``m`` (its keys and credential, no local store,
    no witness key)."""
    shutil.copytree(m.data, to, ignore=shutil.ignore_patterns("local.db*", WITNESS_KEY_FILE))
    return to


def _rows(h: HubProcess) -> list[tuple[Any, ...]]:
    with h.db() as c:
        return c.execute(
            "SELECT key_name, key_id, member, size, signed_at, checkpoint, cosignature"
            " FROM cosignatures ORDER BY key_name, key_id"
        ).fetchall()


def _alarms(data: Path) -> list[tuple[str, dict[str, Any]]]:
    c = sqlite3.connect(data / LOCAL_DB)
    try:
        rows = c.execute("SELECT kind, evidence FROM log_alarms ORDER BY id").fetchall()
    finally:
        c.close()
    return [(kind, json.loads(evidence)) for kind, evidence in rows]


def _sync(data: Path, address: str, insecure: bool = False, **kw: Any) -> Any:
    d = SyncDaemon(data, insecure=insecure, address=address, workers=0, **kw)
    try:
        return d.sync_once()
    finally:
        d.close()


def _vkey(capsys: pytest.CaptureFixture[str], data: Path) -> str:
    capsys.readouterr()
    assert sighub(["checkpoint", "witness-key", "--data", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "PRIVATE" not in out + err
    return out.strip()


# -- the honest path --------------------------------------------------------------------
def test_the_witness_key_is_made_once_and_kept_secret(
    ww: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    wit = ww["wit"]
    vkey = _vkey(capsys, wit.data)
    path = wit.data / WITNESS_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = CosignatureVerifier.from_vkey(vkey)
    assert key.name == "wit.witness.sighub" and key.vkey == vkey
    assert sighub(["checkpoint", "witness-key", "--data", str(wit.data), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"vkey": vkey, "path": str(path), "created": False}


def test_a_witness_cosigns_and_a_member_requiring_it_syncs(
    ww: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    h, pub, wit, sub = ww["hub"], ww["pub"], ww["wit"], ww["sub"]
    vkey = _vkey(capsys, wit.data)
    pub.publish(pub.indicators(2))
    report = _sync(wit.data, h.address)
    ((name, _, member, size, signed_at, note, line),) = _rows(h)
    assert (name, member) == ("wit.witness.sighub", "wit") and size == report.log_size
    assert abs(signed_at - time.time()) < 30
    # the hub serves it as one note signed by the hub, then the witness
    cred = Credential.load(sub.data)
    (served,) = sub.client().witnessed()
    assert served == bytes(note) + bytes(line)
    key = CosignatureVerifier.from_vkey(vkey)
    opened = open_checkpoint(served, hub_key(cred.log_origin, cred.hub_public_key), [key])
    assert [c.name for c in opened.cosignatures] == [key.name]
    assert len(opened.note.signatures) == 2 and opened.checkpoint.size == size
    # another member, requiring that witness
    got = _sync(sub.data, h.address, witnesses=WitnessPolicy.from_vkeys(1, [vkey]))
    assert got.witnesses == 1 and got.log_size >= size
    capsys.readouterr()
    argv = ["sync", "--data", str(sub.data), "--hub", h.address, "--workers", "0"]
    assert sighub([*argv, "--witnesses", "1", "--witness-key", vkey]) == 0
    out = capsys.readouterr().out
    assert "witnessed: 1 of 1 known witnesses vouch for this tree (1 required)" in out
    assert sighub([*argv, "--witnesses", "1", "--witness-key", vkey, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["witnesses"] == {"required": 1, "vouched": 1}


def test_the_witness_options_come_from_the_environment(
    ww: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, wit, sub = ww["hub"], ww["wit"], ww["sub"]
    vkey = _vkey(capsys, wit.data)
    _sync(wit.data, h.address)
    monkeypatch.setenv("SIGHUB_WITNESSES", "1")
    monkeypatch.setenv("SIGHUB_WITNESS_KEYS", f"  {vkey}\n")
    argv = ["sync", "--data", str(sub.data), "--hub", h.address, "--workers", "0", "--json"]
    assert sighub(argv) == 0
    assert json.loads(capsys.readouterr().out)["witnesses"] == {"required": 1, "vouched": 1}
    monkeypatch.setenv("SIGHUB_WITNESSES", "2")
    assert sighub(argv) == EXIT_BAD_INPUT  # two required, one key known: a usage error
    assert "2 required but 1 witness key(s) given" in capsys.readouterr().err


def test_fewer_witnesses_than_required_is_an_alarm(
    ww: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h, wit, sub = ww["hub"], ww["wit"], ww["sub"]
    vkey = _vkey(capsys, wit.data)
    _sync(wit.data, h.address)
    silent = Cosigner.generate("silent.witness.sighub").verifier.vkey  # never co-signs
    data = _copy(sub, tmp_path / "sub2")
    policy = WitnessPolicy.from_vkeys(2, [vkey, silent])
    with pytest.raises(LogAlarm) as err:
        _sync(data, h.address, witnesses=policy)
    assert err.value.kind is AlarmKind.UNWITNESSED
    text = str(err.value)
    assert "1 of the 2 known witnesses vouch" in text and "2 required" in text
    assert "silent.witness.sighub+" in text and "no cosignature at the hub" in text
    ((kind, evidence),) = _alarms(data)
    assert kind == "unwitnessed checkpoint" and evidence["vouched"] == [
        f"wit.witness.sighub+{CosignatureVerifier.from_vkey(vkey).key_id:08x}"
    ]
    with pytest.raises(AlarmRecorded):
        _sync(data, h.address)
    assert sighub(["status", "--data", str(data)]) == EXIT_ALARM
    # the CLI says the same, exit 5; too few keys for K is a usage error, exit 2
    capsys.readouterr()
    argv = ["sync", "--data", str(data), "--hub", h.address, "--workers", "0", "--clear-alarm"]
    keys = ["--witness-key", vkey, "--witness-key", silent]
    assert sighub([*argv, "--witnesses", "2", *keys]) == EXIT_ALARM
    assert "unwitnessed checkpoint" in capsys.readouterr().err
    assert sighub([*argv, "--witnesses", "2", "--witness-key", vkey]) == EXIT_BAD_INPUT
    assert "2 required but 1 witness key(s) given" in capsys.readouterr().err
    assert sighub([*argv, "--witnesses", "1", "--witness-key", "s3ller+00"]) == EXIT_BAD_INPUT
    assert "witness key: cosigner verifier key" in capsys.readouterr().err


# -- what the hub refuses ---------------------------------------------------------------
def _log_signer(h: HubProcess) -> Ed25519Signer:
    return load_log_signer(HubPaths(h.data).signing_key, "sighub/test-hub")


def _hub_note(h: HubProcess, size: int | None = None, root: bytes | None = None) -> bytes:
    """A checkpoint signed with the hub's own log key (of the tree at ``size`` unless
    ``root`` says otherwise)."""
    with h.db() as c:
        size = TLOG.size(c) if size is None else size
        root = TLOG.root(c, size) if root is None else root
    body = Checkpoint("sighub/test-hub", size, root).with_time(int(time.time()))
    return sign_checkpoint(body, _log_signer(h))


def _line(key: Cosigner, note: bytes, at: float | None = None) -> bytes:
    cp = parse_checkpoint(parse_note(note).text)
    return key.cosign(cp, int(time.time() if at is None else at)).line.encode()


Case = Callable[[HubProcess, bytes, Cosigner], tuple[bytes, bytes, str]]


def _flip(line: bytes) -> bytes:
    raw = bytearray(base64.b64decode(line.split(b" ")[-1]))
    raw[-1] ^= 1
    return line.rsplit(b" ", 1)[0] + b" " + base64.b64encode(bytes(raw)) + b"\n"


def _other_signed(text: str) -> bytes:
    other = Ed25519Signer.generate("sighub/test-hub")
    return sign_checkpoint(parse_checkpoint(text), other)


REFUSED: dict[str, tuple[Case, str, str]] = {
    "bad signature": (
        lambda h, n, k: (n, _flip(_line(k, n)), k.verifier.vkey),
        "INVALID_ARGUMENT",
        "does not verify with",
    ),
    "another key's line": (
        lambda h, n, k: (n, _line(Cosigner.generate(k.name), n), k.verifier.vkey),
        "INVALID_ARGUMENT",
        "expected a line by the witness key",
    ),
    "malformed key": (
        lambda h, n, k: (n, _line(k, n), "🧀🍕+00000000+AA=="),
        "INVALID_ARGUMENT",
        "witness_key",
    ),
    "not the hub's note": (
        lambda h, n, k: (_other_signed(parse_note(n).text), _line(k, n), k.verifier.vkey),
        "INVALID_ARGUMENT",
        "that this hub did not make",
    ),
    "a second signature": (
        lambda h, n, k: (
            sign_checkpoint(
                parse_checkpoint(parse_note(n).text),
                _log_signer(h),
                Ed25519Signer.generate("s3ller"),
            ),
            _line(k, n),
            k.verifier.vkey,
        ),
        "INVALID_ARGUMENT",
        "signature limit",
    ),
    "two lines": (
        lambda h, n, k: (n, _line(k, n) * 2, k.verifier.vkey),
        "INVALID_ARGUMENT",
        "one signature line",
    ),
    "future time": (
        lambda h, n, k: (n, _line(k, n, time.time() + 3600), k.verifier.vkey),
        "INVALID_ARGUMENT",
        "ahead of the hub's clock",
    ),
    "size beyond the log": (
        lambda h, n, k: _pair(
            _hub_note(h, parse_checkpoint(parse_note(n).text).size + 5, bytes(32)), k
        ),
        "FAILED_PRECONDITION",
        "is beyond this log's",
    ),
    "another root": (
        lambda h, n, k: _pair(_hub_note(h, root=bytes(range(32))), k),
        "FAILED_PRECONDITION",
        "this log's root there is",
    ),
}


def _pair(note: bytes, key: Cosigner) -> tuple[bytes, bytes, str]:
    return note, _line(key, note), key.verifier.vkey


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_cosignatures_the_hub_refuses(ww: dict[str, Any], case: str) -> None:
    h, wit2 = ww["hub"], ww["wit2"]
    build, code, words = REFUSED[case]
    note, line, vkey = build(h, _hub_note(h), Cosigner.generate("wit2.witness.sighub"))
    before = _rows(h)
    with pytest.raises(HubRejected) as err:
        wit2.client().add_cosignature(note, line, vkey)
    assert err.value.code == code and words in err.value.hub_message, err.value
    assert err.value.hub_message.startswith("AddCosignature: ")
    assert _rows(h) == before


def test_a_witness_key_is_bound_and_only_moves_forward(ww: dict[str, Any]) -> None:
    h, wit2, sub = ww["hub"], ww["wit2"], ww["sub"]
    key = Cosigner.generate("bound.witness.sighub")
    with h.db() as c:
        size = TLOG.size(c)
    older = _hub_note(h, size - 2)
    assert wit2.client().add_cosignature(*_pair(older, key)) == size - 2
    newer = _hub_note(h)
    assert wit2.client().add_cosignature(*_pair(newer, key)) == size
    before = _rows(h)
    # another member sending the same key: refused
    with pytest.raises(HubRejected) as err:
        sub.client().add_cosignature(*_pair(newer, key))
    assert err.value.code == "PERMISSION_DENIED" and "was first sent by 'wit2'" in str(err.value)
    # an older tree than the one held: refused
    with pytest.raises(HubRejected) as err:
        wit2.client().add_cosignature(*_pair(older, key))
    assert err.value.code == "FAILED_PRECONDITION" and f"of size {size}" in str(err.value)
    # the same tree, co-signed earlier than the one held: refused too
    with pytest.raises(HubRejected) as err:
        wit2.client().add_cosignature(
            newer, _line(key, newer, time.time() - 600), key.verifier.vkey
        )
    assert err.value.code == "FAILED_PRECONDITION"
    assert _rows(h) == before


def test_a_member_holds_a_bounded_number_of_witness_keys(ww: dict[str, Any]) -> None:
    h, outsider = ww["hub"], ww["outsider"]
    note = _hub_note(h)
    keys = [Cosigner.generate(f"o{i}.witness") for i in range(MAX_KEYS_PER_MEMBER)]
    for key in keys:
        outsider.client().add_cosignature(*_pair(note, key))
    before = _rows(h)
    with pytest.raises(HubRejected) as err:
        outsider.client().add_cosignature(*_pair(note, Cosigner.generate("o9.witness")))
    assert err.value.code == "RESOURCE_EXHAUSTED" and "already has 4 witness keys" in str(err.value)
    assert _rows(h) == before
    # a key it holds still moves forward (a later cosignature of the same tree)
    time.sleep(1)
    outsider.client().add_cosignature(*_pair(_hub_note(h), keys[0]))
    after = {r[0]: r[4] for r in _rows(h)}
    assert after["o0.witness"] > {r[0]: r[4] for r in before}["o0.witness"]
    with pytest.raises(HubRejected) as err:
        outsider.client().witnessed(["s3ller"])
    assert err.value.code == "INVALID_ARGUMENT" and "witnesses[0]" in str(err.value)


# -- out of band: checkpoint show / compare -------------------------------------------------
def test_show_and_compare_between_two_honest_members(
    ww: dict[str, Any], capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    h, pub, sub, wit = ww["hub"], ww["pub"], ww["sub"], ww["wit"]
    _sync(sub.data, h.address)
    pub.publish(pub.indicators(1))
    time.sleep(0.2)
    _sync(wit.data, h.address)
    capsysbinary.readouterr()
    for m in (sub, wit):
        assert sighub(["checkpoint", "show", "--data", str(m.data)]) == 0
        note = capsysbinary.readouterr().out
        (tmp_path / f"{m.name}.note").write_bytes(note)
        cred = Credential.load(m.data)
        open_checkpoint(note, hub_key(cred.log_origin, cred.hub_public_key))  # exact bytes
    sizes = [parse_checkpoint(parse_note((tmp_path / f"{n}.note").read_bytes()).text).size
             for n in ("sub", "wit")]  # fmt: skip
    assert sizes[0] < sizes[1]
    for mine, theirs in (("sub", "wit"), ("wit", "sub"), ("sub", "sub")):
        data = ww[mine].data
        argv = ["checkpoint", "compare", str(tmp_path / f"{theirs}.note"), "--data", str(data)]
        assert sighub([*argv, "--hub", h.address, "--json"]) == 0
        verdict = json.loads(capsysbinary.readouterr().out)
        assert verdict["consistent"] is True
        same = mine == theirs
        assert ("same root" in verdict["how"]) == same
        assert ("consistency proof" in verdict["how"]) != same
    assert sighub(["checkpoint", "show", "--data", str(sub.data), "--json"]) == 0
    shown = json.loads(capsysbinary.readouterr().out)
    assert shown["note"].encode() == (tmp_path / "sub.note").read_bytes()
    assert _alarms(sub.data) == [] and _alarms(wit.data) == []


@pytest.mark.parametrize("content", ["garbage", "unsigned", "other key", "too large", "missing"])
def test_compare_refuses_a_bad_file(
    ww: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str
) -> None:
    h, sub = ww["hub"], ww["sub"]
    _sync(sub.data, h.address)
    path = tmp_path / "their.note"
    note = _hub_note(h)
    text = parse_note(note).text
    if content == "garbage":
        path.write_bytes(b"s3ller \xff\x00 menu\n")
    elif content == "unsigned":
        path.write_text(text)
    elif content == "other key":
        path.write_bytes(_other_signed(text))
    elif content == "too large":
        path.write_bytes(note + b"x" * (256 * 1024))
    capsys.readouterr()
    argv = ["checkpoint", "compare", str(path), "--data", str(sub.data), "--hub", h.address]
    assert sighub(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err
    assert _alarms(sub.data) == []


def test_show_before_any_sync_says_what_to_run(
    ww: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = _copy(ww["sub"], tmp_path / "fresh")
    capsys.readouterr()
    assert sighub(["checkpoint", "show", "--data", str(data)]) == EXIT_BAD_INPUT
    assert f"run `sighub sync --data {data}` first" in capsys.readouterr().err


# -- a lying hub: two members, two trees ----------------------------------------------------
@pytest.fixture
def split(ww: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fake hub (the real one's log and key) that shows a witness, a copy of pub with a
    witness key, view B: the log and one envelope; the witness syncs and co-signs it.
    The fake then shows view A, the log and another envelope, to the victim."""
    h, pub = ww["hub"], ww["pub"]
    base = FakeLog.of(h)
    view_a = FakeLog(base.signer, list(base.entries))
    view_b = FakeLog(base.signer, list(base.entries))
    view_a.add_envelope("sg-csam", pub.envelope(pub.indicators(1)))
    view_b.add_envelope("sg-csam", pub.envelope(pub.indicators(1)))
    with LyingHub(view_b, pub.client()) as fake:
        yield {"fake": fake, "a": view_a, "b": view_b, "pub": pub, "tmp": tmp_path}


def _witness_sees_b(s: dict[str, Any]) -> tuple[Path, str]:
    fake = s["fake"]
    data = _copy(s["pub"], s["tmp"] / "witness")
    key, _ = witness_key(data, "pub")
    _sync(data, fake.address, insecure=True)
    assert list(fake.cosigned) == [f"{key.name}+{key.key_id:08x}"]
    return data, key.verifier.vkey


def _show_a(s: dict[str, Any], proofs: FakeLog) -> None:
    fake, a = s["fake"], s["a"]
    fake.log, fake.proofs = a, proofs
    fake.script = lambda r: [a.batch(r.cursor)]


def _roots(evidence: dict[str, Any], cred: Credential) -> list[bytes]:
    key = hub_key(cred.log_origin, cred.hub_public_key)
    notes = [base64.b64decode(evidence[k]) for k in ("checkpoint", "other")]
    return [open_checkpoint(n, key).checkpoint.root for n in notes]


@pytest.mark.parametrize("how", ["same size", "refused proof", "bad proof"])
def test_a_witness_catches_a_split_view(split: dict[str, Any], how: str) -> None:
    fake, a, b = split["fake"], split["a"], split["b"]
    if how != "same size":  # the witness sees a longer tree B
        b.add_envelope("sg-csam", split["pub"].envelope(split["pub"].indicators(1)))
    _, vkey = _witness_sees_b(split)
    _show_a(split, a if how == "refused proof" else b)
    victim = _copy(split["pub"], split["tmp"] / "victim")
    with pytest.raises(LogAlarm) as err:
        _sync(victim, fake.address, True, witnesses=WitnessPolicy.from_vkeys(1, [vkey]))
    assert err.value.kind is AlarmKind.SPLIT_VIEW
    assert "the hub shows different members different trees" in str(err.value)
    words = {"same size": "same size and different roots", "refused proof": "refuses to prove",
             "bad proof": "are not of one log"}  # fmt: skip
    assert words[how] in str(err.value)
    ((kind, evidence),) = _alarms(victim)
    assert kind == "split view"
    roots = _roots(evidence, Credential.load(victim))
    assert roots == [_root(a), _root(b)]
    other = base64.b64decode(evidence["other"])
    assert len(parse_note(other).signatures) == 2  # the witness's cosignature is kept too


def _root(log: FakeLog) -> bytes:
    return parse_checkpoint(parse_note(log.checkpoint()).text).root


def test_compare_catches_a_split_view(
    split: dict[str, Any], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    fake, a, b = split["fake"], split["a"], split["b"]
    witness, _ = _witness_sees_b(split)
    _show_a(split, a)
    victim = _copy(split["pub"], split["tmp"] / "victim")
    _sync(victim, fake.address, insecure=True)  # requiring no witness: not caught
    capsysbinary.readouterr()
    assert sighub(["checkpoint", "show", "--data", str(witness)]) == 0
    theirs = split["tmp"] / "witness.note"
    theirs.write_bytes(capsysbinary.readouterr().out)
    argv = ["checkpoint", "compare", str(theirs), "--data", str(victim)]
    assert sighub([*argv, "--hub", fake.address, "--insecure"]) == EXIT_ALARM
    err = capsysbinary.readouterr().err.decode()
    assert "split view" in err and "table log_alarms" in err
    ((kind, evidence),) = _alarms(victim)
    assert kind == "split view" and base64.b64decode(evidence["other"]) == theirs.read_bytes()
    assert _roots(evidence, Credential.load(victim)) == [_root(a), _root(b)]
    assert sighub(["status", "--data", str(victim)]) == EXIT_ALARM


# -- follow mode ------------------------------------------------------------------------
def _follow(d: SyncDaemon, until: Callable[[SyncReport], bool], seconds: float = 30) -> bool:
    """Run ``d.follow`` in a thread until ``until(last report)`` holds (polled: True) or
    ``seconds`` pass (False); what follow raised is raised."""
    stop = threading.Event()
    last = [SyncReport()]
    failed: list[BaseException] = []

    def run() -> None:
        try:
            d.follow(stop, on_batch=lambda r: last.__setitem__(0, r))
        except BaseException as exc:  # handed to the test's thread
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    reached = False
    try:
        while thread.is_alive() and time.monotonic() < deadline:
            if until(last[0]):
                reached = True
                break
            time.sleep(0.05)
    finally:
        stop.set()
        d.interrupt()
        thread.join(timeout=30)
        d.close()
    if failed:
        raise failed[0]
    return reached


def test_a_following_witness_cosigns_and_a_follower_checks(
    ww: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h, pub, wit, sub = ww["hub"], ww["pub"], ww["wit"], ww["sub"]
    vkey = _vkey(capsys, wit.data)
    sent = pub.publish(pub.indicators(1)).sequence
    witness = SyncDaemon(wit.data, address=h.address, workers=0)

    def cosigned(report: SyncReport) -> bool:
        rows = [r for r in _rows(h) if r[2] == "wit"]
        return bool(rows) and rows[0][3] >= sent

    assert _follow(witness, cosigned), "the following witness did not co-sign the publish"
    policy = WitnessPolicy.from_vkeys(1, [vkey])
    follower = SyncDaemon(sub.data, address=h.address, workers=0, witnesses=policy)
    assert _follow(follower, lambda r: r.witnesses == 1)
    silent = Cosigner.generate("silent.witness.sighub").verifier.vkey
    data = _copy(sub, tmp_path / "follower")
    alone = SyncDaemon(
        data, address=h.address, workers=0, witnesses=WitnessPolicy.from_vkeys(1, [silent])
    )
    with pytest.raises(LogAlarm) as err:
        _follow(alone, lambda r: False)
    assert err.value.kind is AlarmKind.UNWITNESSED
    assert [k for k, _ in _alarms(data)] == ["unwitnessed checkpoint"]
