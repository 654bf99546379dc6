"""The hub's rules for wraps to members of other hubs (``_epochs._check_far``), on an
in-process store: a far wrap is taken only for the origin of an active peering that maps a
collaboration to this one, each refusal leaves the log, the epochs and the wraps as they
were, and a wrap taken is logged as one ``collab.wrap`` leaf that gives back the wrap."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._envelope import key_id, public_key_bytes
from sighub.client._hpke import X25519_SUITE, EncryptionKey
from sighub.client._leaves import MAX_LEAF_BYTES, key_commitment, parse_leaf
from sighub.client._model import Tlp
from sighub.client._wraps import Recipient, Wrap, new_secret, wrap_epoch
from sighub.hub._config import HubConfig
from sighub.hub._epochs import put_epoch
from sighub.hub._errors import HubError
from sighub.hub._hub import Hub
from sighub.hub._peering import Direction, Peering
from sighub.hub._store import MemberRow, Store

X = "sg-x"
NOW = "2026-11-28T00:00:00.000Z"
STEWARD = MemberRow("stw-a", "identity--stw-a", ("publisher", "subscriber"), "active", NOW, None)
# the peer hubs: regional maps sg-x, national's peering is suspended, hotline maps another
REGIONAL, NATIONAL, HOTLINE = "sighub/regional", "sighub/national", "sighub/hotline"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store = Store(tmp_path / "hub.db")
    store.migrate()
    signing = Ed25519PrivateKey.generate()
    own = EncryptionKey.generate(X25519_SUITE)
    with store.tx() as c:
        c.execute(
            "INSERT INTO members (name, identity, roles, status, created) VALUES (?, ?, ?,"
            " 'active', ?)",
            (STEWARD.name, STEWARD.identity, ",".join(STEWARD.roles), NOW),
        )
        c.execute(
            "INSERT INTO member_keys (key_id, member, public_key, added) VALUES (?, ?, ?, ?)",
            (key_id(signing.public_key()), STEWARD.name, public_key_bytes(signing.public_key()),
             NOW),
        )  # fmt: skip
        c.execute(
            "INSERT INTO encryption_keys (key_id, member, suite, public_key, proof,"
            " signing_key_id, added, seq) VALUES (?, ?, ?, ?, x'00', ?, ?, 1)",
            (own.key_id, STEWARD.name, own.suite, own.public, key_id(signing.public_key()), NOW),
        )
        c.execute("INSERT INTO collabs (name, created) VALUES (?, ?)", (X, NOW))
        c.execute("INSERT INTO memberships (collab, member) VALUES (?, ?)", (X, STEWARD.name))
        c.execute(
            "INSERT INTO collab_stewards (collab, member, signature, seq) VALUES (?, ?, '', 1)",
            (X, STEWARD.name),
        )
        for name, origin, local, status in (
            ("regional", REGIONAL, X, "active"),
            ("national", NATIONAL, X, "suspended"),
            ("hotline", HOTLINE, "sg-other", "active"),
        ):
            log_key = public_key_bytes(Ed25519PrivateKey.generate().public_key())
            p = Peering(name, origin, log_key, "127.0.0.1:1", ((local, local),), Direction.PULL,
                        3, Tlp.AMBER, status, b"s" * 64, 1)  # fmt: skip
            store.add_peering(p, NOW)
    yield {"store": store, "signing": signing, "own": own}
    store.close()


def _wraps(hub: dict[str, Any], *far: str, secret: bytes | None = None) -> list[Wrap]:
    """Epoch 0 wrapped to the steward and to each of ``far`` (``member@origin``)."""
    key = EncryptionKey.generate(X25519_SUITE)
    own: EncryptionKey = hub["own"]
    recipients = [Recipient(STEWARD.name, own.suite, own.public)]
    recipients += [Recipient(r, key.suite, key.public) for r in far]
    return wrap_epoch(hub["signing"], STEWARD.name, X, 0, secret or new_secret(), recipients)


def _put(hub: dict[str, Any], wraps: list[Wrap]) -> tuple[int, int]:
    return put_epoch(hub["store"], STEWARD, X, 0, wraps[0].commitment, wraps, NOW)


def _state(store: Store) -> tuple[Any, ...]:
    return tuple(
        store.all(sql)
        for sql in (
            "SELECT seq, type, leaf FROM leaves ORDER BY seq",
            "SELECT * FROM collab_epochs ORDER BY collab, epoch",
            "SELECT collab, epoch, recipient FROM epoch_wraps ORDER BY 1, 2, 3",
            "SELECT * FROM audit ORDER BY seq",
        )
    )


@pytest.mark.parametrize(
    ("recipient", "code", "says"),
    [
        ("plat-b@sighub/stranger", "FAILED_PRECONDITION", "neither a peer this collaboration"),
        (f"plat-b@{NATIONAL}", "FAILED_PRECONDITION", "is suspended"),
        (f"plat-b@{HOTLINE}", "FAILED_PRECONDITION", "neither a peer this collaboration"),
        (f"Plat_B@{REGIONAL}", "INVALID_ARGUMENT", "expected member@sighub/<hub name>"),
        (f"@{REGIONAL}", "INVALID_ARGUMENT", "expected member@sighub/<hub name>"),
        ("plat-b@", "INVALID_ARGUMENT", "expected member@sighub/<hub name>"),
        ("plat-b@regional", "INVALID_ARGUMENT", "expected member@sighub/<hub name>"),
        (f"plat-b@{REGIONAL} ", "INVALID_ARGUMENT", "expected member@sighub/<hub name>"),
    ],
)
def test_a_far_wrap_the_hub_refuses_changes_nothing(
    hub: dict[str, Any], recipient: str, code: str, says: str
) -> None:
    store: Store = hub["store"]
    before = _state(store)
    with pytest.raises(HubError) as refused:
        _put(hub, _wraps(hub, f"plat-c@{REGIONAL}", recipient))  # one good, one not
    assert refused.value.code is getattr(grpc.StatusCode, code)
    assert says in refused.value.message and repr(recipient)[:40] in refused.value.message
    assert _state(store) == before
    assert store.one("SELECT COUNT(*) FROM leaves WHERE type IN ('collab.epoch',"
                     " 'collab.wrap')")[0] == 0  # fmt: skip
    assert store.one("SELECT COUNT(*) FROM epoch_wraps")[0] == 0


def test_a_far_wrap_after_the_peering_is_suspended_is_refused(hub: dict[str, Any]) -> None:
    """Epoch 0 reaches regional's member; regional's peering is suspended; the current
    epoch to a member that joined there since is refused, and nothing is added."""
    store: Store = hub["store"]
    secret = new_secret()
    _put(hub, _wraps(hub, f"plat-b@{REGIONAL}", secret=secret))
    with store.tx():
        store.set_peering_status("regional", "suspended")
    key = EncryptionKey.generate(X25519_SUITE)
    (late,) = wrap_epoch(hub["signing"], STEWARD.name, X, 0, secret,
                         [Recipient(f"plat-c@{REGIONAL}", key.suite, key.public)])  # fmt: skip
    before = _state(store)
    with pytest.raises(HubError) as refused:
        put_epoch(store, STEWARD, X, 0, key_commitment(secret), [late], NOW)
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert _state(store) == before


def test_a_far_wrap_is_logged_as_one_leaf_that_gives_back_the_wrap(hub: dict[str, Any]) -> None:
    store: Store = hub["store"]
    secret = new_secret()
    wraps = _wraps(hub, f"plat-b@{REGIONAL}", f"plat-c@{REGIONAL}", secret=secret)
    seq, count = _put(hub, wraps)
    assert (seq, count) == (1, 3)
    rows = store.all("SELECT seq, type, collab, leaf FROM leaves ORDER BY seq")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (1, "collab.epoch", X), (2, "collab.wrap", X), (3, "collab.wrap", X)
    ]  # fmt: skip
    fars = [w for w in wraps if w.far]
    assert [Wrap.from_leaf(parse_leaf(bytes(r[3]))) for r in rows[1:]] == fars
    far = fars[0]
    # the local wrap is not logged; all are stored for fetching
    recipients = store.all_column("SELECT recipient FROM epoch_wraps ORDER BY recipient")
    assert recipients == sorted([STEWARD.name, *(w.recipient for w in fars)])
    # the same far member again: refused as already wrapped, nothing added
    before = _state(store)
    (again,) = [w for w in _wraps(hub, far.recipient, secret=secret) if w.far]
    with pytest.raises(HubError) as refused:
        put_epoch(store, STEWARD, X, 0, far.commitment, [again], NOW)
    assert refused.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert _state(store) == before


def test_a_far_wrap_signed_by_a_key_not_the_stewards_is_refused(hub: dict[str, Any]) -> None:
    store: Store = hub["store"]
    key = EncryptionKey.generate(X25519_SUITE)
    secret = new_secret()
    own = wrap_epoch(hub["signing"], STEWARD.name, X, 0, secret,
                     [Recipient(STEWARD.name, hub["own"].suite, hub["own"].public)])  # fmt: skip
    forged = wrap_epoch(Ed25519PrivateKey.generate(), STEWARD.name, X, 0, secret,
                        [Recipient(f"plat-b@{REGIONAL}", key.suite, key.public)])  # fmt: skip
    before = _state(store)
    with pytest.raises(HubError) as refused:
        put_epoch(store, STEWARD, X, 0, key_commitment(secret), own + forged, NOW)
    assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert _state(store) == before


def test_a_far_wrap_whose_leaf_is_too_large_is_refused_whole(hub: dict[str, Any]) -> None:
    """The leaf is appended after the epoch's: refused there, the epoch leaf goes too."""
    store: Store = hub["store"]
    secret = new_secret()
    own, far = _wraps(hub, f"plat-b@{REGIONAL}", secret=secret)
    big = replace(far, recipient_key_id="k" * (MAX_LEAF_BYTES - 100))
    big = replace(big, signature=hub["signing"].sign(big.statement()))
    before = _state(store)
    with pytest.raises(HubError) as refused:
        _put(hub, [own, big])
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "collab.wrap leaf" in refused.value.message
    assert _state(store) == before


def test_a_peer_stewards_epoch_is_recorded_only_where_keys_come_from_the_peer(
    hub: dict[str, Any],
) -> None:
    """``Hub.record_far_epoch`` (the relay, for a copied epoch leaf of a mapped
    collaboration): recorded once for a collaboration without stewards or keys of this
    hub's own; never for one with either, which keeps its own epochs."""
    store: Store = hub["store"]
    h = Hub(store, HubConfig.defaults(), ec.generate_private_key(ec.SECP256R1()), b"")
    with store.tx() as c:
        for name in ("sg-y", "sg-z"):
            c.execute("INSERT INTO collabs (name, created) VALUES (?, ?)", (name, NOW))
        c.execute("INSERT INTO collab_keys (collab, epoch, secret, created) VALUES"
                  " ('sg-z', 0, ?, ?)", (b"k" * 32, NOW))  # fmt: skip
    steward = f"stw-a@{REGIONAL}"
    before = _state(store)
    with store.tx():
        assert not h.record_far_epoch(X, 0, "ab" * 32, steward, 7)  # stewards of its own
        assert not h.record_far_epoch("sg-z", 1, "ab" * 32, steward, 7)  # keys of its own
    assert _state(store) == before
    with store.tx():
        assert h.record_far_epoch("sg-y", 0, "ab" * 32, steward, 7)
        h.record_far_epoch("sg-y", 0, "cd" * 32, f"mallory@{REGIONAL}", 9)  # the first stays
    rows = store.all("SELECT collab, epoch, commitment, steward, seq FROM collab_epochs")
    assert rows == [("sg-y", 0, "ab" * 32, steward, 7)]
    assert store.collab_epoch("sg-y") == 0


def test_a_far_wrap_to_a_hub_behind_a_peer_is_taken_once_its_leaves_were_copied(
    hub: dict[str, Any],
) -> None:
    """A hub two hops away is no peer of this one: a wrap to its member is refused until
    this log holds copies of that hub's leaves (its relay brought them), then taken."""
    store: Store = hub["store"]
    behind = "sighub/coastal"
    before = _state(store)
    with pytest.raises(HubError) as refused:
        _put(hub, _wraps(hub, f"plat-d@{behind}"))
    assert refused.value.code.name == "FAILED_PRECONDITION"
    assert "neither a peer this collaboration" in refused.value.message
    assert _state(store) == before
    with store.tx():
        assert store.take_copy(f"leaf {behind} 7")
    seq, stored = _put(hub, _wraps(hub, f"plat-d@{behind}"))
    assert seq > 0 and stored == 2
    kinds = [r[0] for r in store.all("SELECT type FROM leaves WHERE seq > ? ORDER BY seq", 0)]
    assert kinds.count("collab.wrap") == 1
