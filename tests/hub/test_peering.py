"""Peering records (federation, step 1) on real hubs: hub B's admin signs a peering with
hub A, B enrolls at A as a member with role peer and logs a ``peer.add`` leaf its clients
can verify; every refusal leaves B as it was (no record, no leaf, no credential)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub.client._daemon import SyncDaemon
from sighub.client._enroll import EnrollmentFile, enroll
from sighub.client._envelope import canonical_json
from sighub.client._errors import EXIT_BAD_INPUT, EXIT_REFUSED
from sighub.client._grant import (
    ADMIN_SIGNING_KEY,
    KeyChainError,
    check_peering,
    load_admin_key,
    peering_statement,
    sign_peering,
)
from sighub.client._leaves import LeafError, parse_leaf, peer_add
from sighub.client._model import Tlp
from sighub.client._proto import admin_pb2, admin_pb2_grpc
from sighub.client._rpc import Credential, open_channel
from sighub.hub._errors import HubError
from sighub.hub._peering import PEER_DIRECTION, Direction, Peering
from sighub.hub._store import Store
from tests.hub.conftest import HubProcess

A_COLLAB, B_COLLAB = "sg-csam", "sg-local"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Hub A (industry-hub) with collaboration sg-csam, hub B (regional-hub) with sg-local,
    hub C (hotline-hub) whose enrollment files get spent before B uses them."""
    tmp = tmp_path_factory.mktemp("peering")
    hubs = {n: HubProcess(tmp / n, name=f"{n}-hub") for n in ("industry", "regional", "hotline")}
    try:
        for hub in hubs.values():
            hub.start()
        assert hubs["industry"].admin_cli("collab", "add", A_COLLAB) == 0
        assert hubs["regional"].admin_cli("collab", "add", B_COLLAB) == 0
        yield {"tmp": tmp, "a": hubs["industry"], "b": hubs["regional"], "c": hubs["hotline"]}
    finally:
        for hub in hubs.values():
            if hub.proc is not None:
                hub.stop()


@pytest.fixture(scope="module")
def stub(world: dict[str, Any]) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    """B's AdminService, as B's admin."""
    b: HubProcess = world["b"]
    cred = b.admin
    with open_channel(
        Credential(cred.folder, b.address, cred.member, cred.bearer_token, cred.hub_public_key)
    ) as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


def _issue(hub: HubProcess, tmp: Path, member: str, roles: str = "peer") -> Path:
    """An enrollment file ``hub``'s admin issues for ``member``."""
    out = tmp / f"{hub.data.name}-{member}.enroll.json"
    assert hub.admin_cli("member", "add", member, "--roles", roles, "--out", str(out)) == 0
    return out


def _admin_key(hub: HubProcess) -> Ed25519PrivateKey:
    return load_admin_key(Path(hub.admin.folder) / ADMIN_SIGNING_KEY)


def _request(signer: HubProcess, name: str, path: Path, **over: Any) -> admin_pb2.AddPeerRequest:
    """What `sighub admin peer add` sends: the record signed by ``signer``'s admin key
    (``over`` changes a field after signing when it is not a signed one)."""
    ef = EnrollmentFile.load(path)
    fields: dict[str, Any] = {
        "collabs": [(A_COLLAB, B_COLLAB)], "direction": "pull", "max_hops": 3,
        "tlp_ceiling": "amber", "address": ef.hub,
    }  # fmt: skip
    fields.update({k: v for k, v in over.items() if k in fields})
    statement = peering_statement(
        name, ef.log_origin, base64.b64decode(ef.hub_public_key), fields["address"],
        fields["collabs"], fields["direction"], fields["max_hops"], fields["tlp_ceiling"],
    )  # fmt: skip
    return admin_pb2.AddPeerRequest(
        name=name,
        enrollment=path.read_bytes(),
        collaborations=[admin_pb2.CollabMapping(remote=r, local=x) for r, x in fields["collabs"]],
        direction=over.get("wire_direction", PEER_DIRECTION.values[fields["direction"]]),
        max_hops=fields["max_hops"],
        tlp_ceiling=fields["tlp_ceiling"],
        address=fields["address"],
        signature=over.get("signature", sign_peering(_admin_key(signer), statement)),
    )


def _state(hub: HubProcess) -> tuple[Any, ...]:
    """What a refused AddPeer must leave as it was: B's rows, leaves, audit and files.
    Leaves B's relays copy from their peers meanwhile (the member C just added is a leaf
    of C's log) are not B's doing: left out, or the count races the relay."""
    copied = "type NOT IN ('peer.leaf', 'peer.checkpoint')"
    with hub.db() as c:
        counts = tuple(
            c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("peerings", f"leaves WHERE {copied}", "audit")
        )
    peers = hub.data / "peers"
    files = sorted(str(p.relative_to(peers)) for p in peers.rglob("*")) if peers.exists() else []
    return (*counts, files)


def _member_status(hub: HubProcess, name: str) -> str | None:
    with hub.db() as c:
        row = c.execute("SELECT status FROM members WHERE name=?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _peer_leaves(hub: HubProcess) -> list[dict[str, Any]]:
    with hub.db() as c:
        rows = c.execute("SELECT leaf FROM leaves WHERE type LIKE 'peer.%' ORDER BY seq")
        return [parse_leaf(bytes(r[0])) for r in rows]


def _cli(hub: HubProcess, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert hub.admin_cli("peer", *args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def industry(world: dict[str, Any]) -> dict[str, Any]:
    """B's peering "industry" with A, added with the CLI."""
    a: HubProcess = world["a"]
    b: HubProcess = world["b"]
    path = _issue(a, world["tmp"], "hub-b")
    assert b.admin_cli("peer", "add", "industry", "--enrollment", str(path), "--map",
                       f"{A_COLLAB}={B_COLLAB}", "--json", "--max-hops", "4",
                       "--tlp-ceiling", "green") == 0  # fmt: skip
    return {"path": path}


def test_the_peering_is_logged_with_a_signature_clients_verify(
    world: dict[str, Any], industry: dict[str, Any]
) -> None:
    a: HubProcess = world["a"]
    b: HubProcess = world["b"]
    ef = EnrollmentFile.load(industry["path"])
    (leaf,) = [x for x in _peer_leaves(b) if x["type"] == "peer.add"]
    assert leaf["peer"] == "industry" and leaf["origin"] == "sighub/industry-hub"
    assert leaf["log_key"] == ef.hub_public_key == a.admin.hub_public_key
    assert leaf["collabs"] == [f"{A_COLLAB}={B_COLLAB}"]
    assert (leaf["direction"], leaf["max_hops"], leaf["tlp_ceiling"]) == ("pull", 4, "green")
    # a client rebuilds the statement from the leaf alone and checks it under the admin key
    statement = peering_statement(
        leaf["peer"], leaf["origin"], base64.b64decode(leaf["log_key"]), leaf["address"],
        [tuple(x.split("=")) for x in leaf["collabs"]], leaf["direction"], leaf["max_hops"],
        leaf["tlp_ceiling"],
    )  # fmt: skip
    admin_public = base64.b64decode(b.admin.admin_public_key)
    check_peering(admin_public, statement, base64.b64decode(leaf["signature"]), "industry")
    with pytest.raises(KeyChainError, match="does not verify"):
        check_peering(admin_public, statement.replace(b'"green"', b'"amber"'),
                      base64.b64decode(leaf["signature"]), "industry")  # fmt: skip
    # B is a member of A with role peer, its credential in DATA/peers/industry (0700)
    assert _member_status(a, "hub-b") == "active"
    data = b.data / "peers" / "industry"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert Credential.load(data).member == "hub-b"
    assert not list((b.data / "peers").glob(".*"))  # the enrollment file copy is gone


def test_a_member_of_b_syncs_past_the_peering_leaves(
    world: dict[str, Any], industry: dict[str, Any]
) -> None:
    """Peering leaves reach every member in full, and its log guard takes them."""
    b: HubProcess = world["b"]
    member = b.member("watcher", world["tmp"], roles="subscriber", collabs=(B_COLLAB,))
    daemon = SyncDaemon(member.data, address=b.address, workers=0)
    try:
        daemon.sync_once()
        assert daemon.store.alarms() == []
        with b.db() as c:
            (head,) = c.execute("SELECT MAX(seq) FROM leaves").fetchone()
        assert daemon.store.cursor == head
        with b.db() as c:
            seqs = [r[0] for r in c.execute("SELECT seq FROM leaves WHERE type LIKE 'peer.%'")]
        served = {x.sequence: x.leaf for x in member.client().leaves(0, head)}
        assert seqs and all(served[s] is not None for s in seqs)  # in full, not a hash
    finally:
        daemon.close()
        member.close()


def test_list_show_suspend_resume_remove(
    world: dict[str, Any], industry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    a: HubProcess = world["a"]
    b: HubProcess = world["b"]
    path = _issue(a, world["tmp"], "hub-b-two")
    # the same hub again needs its first peering removed: add under a second name later
    listed = _cli(b, capsys, "list")
    assert [p["name"] for p in listed["peerings"]] == ["industry"]
    shown = _cli(b, capsys, "show", "industry")
    assert shown == listed["peerings"][0]
    assert shown["status"] == "active" and shown["collabs"] == [f"{A_COLLAB}={B_COLLAB}"]
    assert _cli(b, capsys, "suspend", "industry")["status"] == "suspended"
    assert b.admin_cli("peer", "suspend", "industry") == EXIT_REFUSED  # already suspended
    assert _cli(b, capsys, "resume", "industry")["status"] == "active"
    assert _cli(b, capsys, "remove", "industry")["status"] == "removed"
    assert not (b.data / "peers" / "industry").exists()
    assert b.admin_cli("peer", "resume", "industry") == EXIT_REFUSED  # removal is for good
    statuses = [(x["peer"], x["status"]) for x in _peer_leaves(b) if x["type"] == "peer.status"]
    assert statuses == [("industry", "suspended"), ("industry", "active"),
                        ("industry", "removed")]  # fmt: skip
    with b.db() as c:
        actions = [r[0] for r in c.execute("SELECT action FROM audit WHERE target='industry'")]
    assert actions == ["peer.add", "peer.suspend", "peer.resume", "peer.remove"]
    capsys.readouterr()
    assert b.admin_cli("audit", "--member", "industry") == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert entries[-1]["action"] == "peer.add"
    assert entries[-1]["detail"] == {"origin": "sighub/industry-hub"}
    # removed, its origin may be peered again, not its name
    assert b.admin_cli("peer", "add", "industry", "--enrollment", str(path), "--map",
                       f"{A_COLLAB}={B_COLLAB}") == EXIT_REFUSED  # fmt: skip
    added = _cli(b, capsys, "add", "industry-two", "--enrollment", str(path), "--map",
                 f"{A_COLLAB}={B_COLLAB}", "--direction", "both")  # fmt: skip
    assert (added["origin"], added["direction"], added["status"]) == (
        "sighub/industry-hub", "both", "active",
    )  # fmt: skip
    assert [p["name"] for p in _cli(b, capsys, "list")["peerings"]] == ["industry", "industry-two"]


def _refused(
    b: HubProcess,
    stub: admin_pb2_grpc.AdminServiceStub,
    request: admin_pb2.AddPeerRequest,
    code: grpc.StatusCode,
    words: str,
) -> None:
    before = _state(b)
    with pytest.raises(grpc.RpcError) as refused:
        stub.AddPeer(request, timeout=60)
    assert refused.value.code() == code, refused.value.details()
    assert words in str(refused.value.details())
    assert _state(b) == before


def test_a_signature_that_does_not_verify_is_refused(
    world: dict[str, Any], stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    c: HubProcess = world["c"]
    b: HubProcess = world["b"]
    path = _issue(c, world["tmp"], "hub-b-forged")
    denied = grpc.StatusCode.PERMISSION_DENIED
    # another admin's key (A's), a signature over other fields, one sent with other fields
    _refused(b, stub, _request(c, "forged", path), denied, "does not verify")
    forged = _request(b, "forged", path, max_hops=5)
    forged.max_hops = 6
    _refused(b, stub, forged, denied, "does not verify")
    other = _request(b, "forged", path)
    other.address = "127.0.0.1:1"
    _refused(b, stub, other, denied, "does not verify")
    _refused(b, stub, _request(b, "forged", path, signature=b"\x01" * 64), denied, "verify")
    assert _member_status(c, "hub-b-forged") == "pending"  # B never enrolled


def test_a_peering_with_itself_is_refused(
    world: dict[str, Any], stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    b: HubProcess = world["b"]
    path = _issue(b, world["tmp"], "myself")
    _refused(b, stub, _request(b, "myself", path), grpc.StatusCode.FAILED_PRECONDITION,
             "no peering with itself")  # fmt: skip


def test_a_file_for_a_member_without_role_peer_is_refused(
    world: dict[str, Any], stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    c: HubProcess = world["c"]
    b: HubProcess = world["b"]
    path = _issue(c, world["tmp"], "hub-b-sub", roles="subscriber")
    _refused(b, stub, _request(b, "subscriber", path), grpc.StatusCode.FAILED_PRECONDITION,
             "needs role peer")  # fmt: skip
    assert _member_status(c, "hub-b-sub") == "pending"


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"tlp_ceiling": "red"}, "red never leaves its hub"),
        ({"tlp_ceiling": "amber-ish"}, "tlp_ceiling"),
        ({"max_hops": 0}, "max_hops"),
        ({"max_hops": 17}, "max_hops"),
        ({"collabs": []}, "collabs"),
        ({"collabs": [("Bad Name", B_COLLAB)]}, "mapping"),
        ({"collabs": [(A_COLLAB, B_COLLAB), (A_COLLAB, "sg-other")]}, "mapped once"),
        ({"collabs": [(A_COLLAB, B_COLLAB), ("sg-two", B_COLLAB)]}, "mapped once"),
        ({"wire_direction": 0}, "direction"),
        ({"address": "no port"}, "address"),
    ],
)
def test_a_bad_field_is_refused(
    world: dict[str, Any],
    stub: admin_pb2_grpc.AdminServiceStub,
    over: dict[str, Any],
    words: str,
) -> None:
    c: HubProcess = world["c"]
    b: HubProcess = world["b"]
    path = world["tmp"] / "hub-b-fields.enroll.json"
    if not path.exists():
        path = _issue(c, world["tmp"], "hub-b-fields").rename(path)
    _refused(b, stub, _request(b, "fields", path, **over), grpc.StatusCode.INVALID_ARGUMENT, words)


def test_an_unknown_local_collaboration_or_a_bad_file_is_refused(
    world: dict[str, Any], stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    c: HubProcess = world["c"]
    b: HubProcess = world["b"]
    path = _issue(c, world["tmp"], "hub-b-local")
    request = _request(b, "local", path, collabs=[(A_COLLAB, "sg-nowhere")])
    _refused(b, stub, request, grpc.StatusCode.NOT_FOUND, "do not exist")
    request = _request(b, "local", path)
    request.enrollment = b'{"hub": 1}'
    _refused(b, stub, request, grpc.StatusCode.INVALID_ARGUMENT, "not an enrollment file")


def test_a_name_or_peer_taken_is_refused(
    world: dict[str, Any], industry: dict[str, Any], stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    a: HubProcess = world["a"]
    b: HubProcess = world["b"]
    c: HubProcess = world["c"]
    taken = _live(b, "sighub/industry-hub")  # "industry", or its successor after removal
    assert taken is not None
    path = _issue(a, world["tmp"], "hub-b-again")
    exists = grpc.StatusCode.ALREADY_EXISTS
    _refused(b, stub, _request(b, "again", path), exists, f"already peered as {taken!r}")
    other = _issue(c, world["tmp"], "hub-b-name")
    _refused(b, stub, _request(b, str(taken), other), exists, "already exists")
    assert _member_status(c, "hub-b-name") == "pending"


def _live(hub: HubProcess, origin: str) -> str | None:
    with hub.db() as c:
        row = c.execute(
            "SELECT name FROM peerings WHERE origin=? AND status != 'removed'", (origin,)
        ).fetchone()
    return None if row is None else str(row[0])


def test_a_failed_enrollment_at_the_peer_stores_nothing(
    world: dict[str, Any], stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    """C refuses the enrollment (its token was spent elsewhere): B keeps no record, no
    leaf, no credential, no copy of the file."""
    b: HubProcess = world["b"]
    c: HubProcess = world["c"]
    path = _issue(c, world["tmp"], "hub-b-spent")
    enroll(path, world["tmp"] / "spender", address=c.address)
    _refused(b, stub, _request(b, "hotline", path), grpc.StatusCode.FAILED_PRECONDITION,
             "enrolling at sighub/hotline-hub")  # fmt: skip
    assert not (b.data / "peers" / "hotline").exists()
    # and a peer that does not answer
    unanswered = _issue(c, world["tmp"], "hub-b-away")
    _refused(b, stub, _request(b, "hotline", unanswered, address="127.0.0.1:9"),
             grpc.StatusCode.FAILED_PRECONDITION, "failed")  # fmt: skip
    assert _member_status(c, "hub-b-away") == "pending"


def test_the_cli_refuses_before_asking_the_hub(world: dict[str, Any], tmp_path: Path) -> None:
    c: HubProcess = world["c"]
    b: HubProcess = world["b"]
    path = _issue(c, world["tmp"], "hub-b-cli")
    before = _state(b)
    base = ["peer", "add", "cli", "--enrollment", str(path)]
    assert b.admin_cli(*base, "--map", "nomapping") == EXIT_BAD_INPUT
    assert (
        b.admin_cli(*base, "--map", f"{A_COLLAB}={B_COLLAB}", "--max-hops", "0") == EXIT_BAD_INPUT
    )
    loose = tmp_path / "loose.json"
    loose.write_bytes(path.read_bytes())
    os.chmod(loose, 0o644)  # an enrollment token readable by others is refused
    assert b.admin_cli("peer", "add", "cli", "--enrollment", str(loose), "--map",
                       f"{A_COLLAB}={B_COLLAB}") == EXIT_BAD_INPUT  # fmt: skip
    assert _state(b) == before and _member_status(c, "hub-b-cli") == "pending"


# -- the record alone ------------------------------------------------------------------------
_NAMES = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)


@st.composite
def peerings(draw: st.DrawFn) -> Peering:
    remotes = draw(st.lists(_NAMES, min_size=1, max_size=5, unique=True))
    locals_ = draw(st.lists(_NAMES, min_size=len(remotes), max_size=len(remotes), unique=True))
    key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return Peering(
        draw(_NAMES),
        "sighub/" + draw(st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True)),
        key,
        draw(st.sampled_from(["127.0.0.1:7443", "hub.example:443", "[::1]:1"])),
        tuple(sorted(zip(remotes, locals_, strict=True))),
        draw(st.sampled_from(list(Direction))),
        draw(st.integers(1, 16)),
        draw(st.sampled_from([Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT])),
        "active",
        b"\x00" * 64,
        draw(st.integers(0, 2**40)),
    )


_ADMIN = Ed25519PrivateKey.generate()
_ADMIN_PUBLIC = _ADMIN.public_key().public_bytes_raw()


@settings(max_examples=60, deadline=None)
@given(p=peerings(), other=peerings())
def test_statement_round_trip(p: Peering, other: Peering) -> None:
    """Signed, the statement verifies; the leaf rebuilds it byte for byte; a statement of
    other fields does not verify under that signature."""
    signature = sign_peering(_ADMIN, p.statement())
    check_peering(_ADMIN_PUBLIC, p.statement(), signature, p.name)
    leaf = parse_leaf(
        peer_add(p.name, p.origin, p.log_key, p.address, p.collabs, p.direction.value,
                 p.max_hops, p.tlp_ceiling.value, signature)
    )  # fmt: skip
    rebuilt = peering_statement(
        leaf["peer"], leaf["origin"], base64.b64decode(leaf["log_key"]), leaf["address"],
        [tuple(x.split("=", 1)) for x in leaf["collabs"]], leaf["direction"],
        leaf["max_hops"], leaf["tlp_ceiling"],
    )  # fmt: skip
    assert rebuilt == p.statement()
    check_peering(_ADMIN_PUBLIC, rebuilt, base64.b64decode(leaf["signature"]), p.name)
    if other.statement() != p.statement():
        with pytest.raises(KeyChainError):
            check_peering(_ADMIN_PUBLIC, other.statement(), signature, p.name)


def _peering(**over: Any) -> Peering:
    fields: dict[str, Any] = {
        "name": "industry", "origin": "sighub/industry-hub", "log_key": _ADMIN_PUBLIC,
        "address": "127.0.0.1:7443", "collabs": ((A_COLLAB, B_COLLAB),),
        "direction": Direction.PULL, "max_hops": 3, "tlp_ceiling": Tlp.AMBER,
        "status": "active", "signature": b"\x00" * 64, "since": 0,
    }  # fmt: skip
    return Peering(**{**fields, **over})


def test_tlp_allows_and_local_collab() -> None:
    amber = _peering()
    assert [amber.tlp_allows(t) for t in Tlp] == [True, True, True, False, False]
    strict = _peering(tlp_ceiling=Tlp.AMBER_STRICT)
    assert [strict.tlp_allows(t) for t in Tlp] == [True, True, True, True, False]
    clear = _peering(tlp_ceiling=Tlp.CLEAR)
    assert [clear.tlp_allows(t) for t in Tlp] == [True, False, False, False, False]
    assert amber.local_collab(A_COLLAB) == B_COLLAB and amber.local_collab("other") is None


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"name": "Industry"}, "peering name"),
        ({"origin": "industry-hub"}, "origin"),
        ({"origin": "sighub/a b"}, "origin"),
        ({"log_key": b"\x00" * 31}, "log_key"),
        ({"address": "hub.example"}, "address"),
        ({"collabs": ((B_COLLAB, "x"), (A_COLLAB, "y"))}, "sorted"),
        ({"collabs": tuple((f"r{i}", f"l{i}") for i in range(17))}, "1-16"),
        ({"direction": "pull"}, "direction"),
        ({"max_hops": True}, "max_hops"),
        ({"tlp_ceiling": Tlp.RED}, "red never"),
        ({"status": "gone"}, "status"),
        ({"signature": b"x"}, "signature"),
        ({"since": -1}, "since"),
    ],
)
def test_every_field_is_checked(over: dict[str, Any], words: str) -> None:
    with pytest.raises(HubError, match=words) as refused:
        _peering(**over)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_peer_leaves_are_checked_like_every_leaf() -> None:
    leaf = peer_add("industry", "sighub/industry-hub", _ADMIN_PUBLIC, "127.0.0.1:1",
                    ((A_COLLAB, B_COLLAB),), "pull", 3, "amber", b"\x00" * 64)  # fmt: skip
    doc = parse_leaf(leaf)
    assert doc["collabs"] == [f"{A_COLLAB}={B_COLLAB}"] and doc["max_hops"] == 3
    for field, value in (("max_hops", "3"), ("collabs", [1]), ("peer", 5)):
        with pytest.raises(LeafError, match=field):
            parse_leaf(canonical_json({**doc, field: value}))
    with pytest.raises(LeafError, match="lacks"):
        parse_leaf(canonical_json({k: v for k, v in doc.items() if k != "signature"}))


def test_the_store_keeps_what_it_was_given(tmp_path: Path) -> None:
    """A record read back from the store is the record stored."""
    store = Store(tmp_path / "hub.db")
    store.migrate()
    p = _peering(collabs=(("a", "x"), ("b", "y")), since=7, direction=Direction.BOTH)
    with store.tx():
        store.add_peering(p, "2026-11-28T00:00:00.000Z")
    assert store.peering("industry") == p and store.peerings() == [p]
    with store.tx():
        store.set_peering_status("industry", "removed")
    assert store.live_peering_by_origin(p.origin) is None
    with store.tx():  # removed: the origin is free again (a new name)
        store.add_peering(_peering(name="industry-two"), "2026-11-28T00:00:01.000Z")
    with pytest.raises(sqlite3.IntegrityError), store.tx():
        store.add_peering(_peering(name="industry-three"), "2026-11-28T00:00:02.000Z")
    store.close()
