"""Publish through a real hub over mTLS: the authorization matrix and the bad-input table,
each asserting the gRPC status and that nothing was stored."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub import Form, Kind
from sighub.client._enroll import rotate_signing_key
from sighub.client._rpc import HubRejected
from sighub.client._stix import blinded_pattern, format_time, indicator_to_stix
from sighub.wire import build_bundle, now_ms, revoke, seal
from tests.hub.conftest import HubProcess, Member


def _rejected(hub: HubProcess, fn: Any, code: str, fragment: str) -> None:
    before = hub.state()
    with pytest.raises(HubRejected) as info:
        fn()
    assert info.value.code == code, info.value
    assert fragment in info.value.hub_message, info.value.hub_message
    assert hub.state() == before  # nothing stored, nothing audited


def test_publish_and_idempotent_republish(world: dict[str, Any]) -> None:
    pub: Member = world["pub"]
    raw = pub.envelope(pub.indicators(3))
    first = pub.client().publish("sg-csam", raw)
    assert first.indicators == 3 and not first.duplicate and first.sequence > 0
    before = world["hub"].state()
    again = pub.client().publish("sg-csam", raw)
    assert again.duplicate and again.sequence == first.sequence
    assert world["hub"].state() == before


def test_both_canon_versions_are_accepted(world: dict[str, Any]) -> None:
    pub: Member = world["pub"]
    for version in ("canon/1", "canon/2"):
        inds = pub.indicators(2, canon_version=version)
        assert pub.client().publish("sg-csam", pub.envelope(inds)).indicators == 2


def test_authorization_matrix(world: dict[str, Any]) -> None:
    hub: HubProcess = world["hub"]
    pub, pub2, sub, outsider = world["pub"], world["pub2"], world["sub"], world["outsider"]
    mine = pub.indicators(1)
    pub.publish(mine)
    _rejected(
        hub,
        lambda: outsider.client().publish(
            "sg-csam", outsider.envelope(outsider.indicators(1, "other"))
        ),
        "PERMISSION_DENIED",
        "not in collaboration 'sg-csam'",
    )
    _rejected(
        hub,
        lambda: sub.client().publish("sg-csam", b"{}"),
        "PERMISSION_DENIED",
        "roles ['subscriber']",
    )
    _rejected(
        hub,
        lambda: pub.client().publish("other", pub.envelope(pub.indicators(1))),
        "PERMISSION_DENIED",
        "not in collaboration 'other'",
    )
    # pub2 revising pub's indicator (same id, pub2's identity and key)
    theirs = pub2.indicators(1, id=mine[0].id, modified=mine[0].modified + timedelta(seconds=1))
    _rejected(hub, lambda: pub2.publish(theirs), "PERMISSION_DENIED", "only the creator")
    # pub signing a bundle that names pub2 as publisher
    forged = pub2.indicators(1)
    raw = seal(build_bundle(forged[0].publisher, forged), pub.files.signing_key())
    _rejected(
        hub,
        lambda: pub.client().publish("sg-csam", raw),
        "PERMISSION_DENIED",
        "the caller",
    )


def test_suspended_and_removed_members(world: dict[str, Any]) -> None:
    hub: HubProcess = world["hub"]
    m = hub.member("temp-suspend", world["tmp"])
    ready = m.envelope(m.indicators(1))
    assert hub.admin_cli("member", "suspend", "temp-suspend") == 0
    _rejected(
        hub, lambda: m.client().publish("sg-csam", ready), "PERMISSION_DENIED", "is suspended"
    )
    assert hub.admin_cli("member", "resume", "temp-suspend") == 0
    assert not m.client().publish("sg-csam", ready).duplicate
    assert hub.admin_cli("member", "remove", "temp-suspend") == 0
    _rejected(
        hub,
        lambda: m.client().publish("sg-csam", m.envelope(m.indicators(1))),
        "UNAUTHENTICATED",
        "not current",
    )
    m.close()


def _bundle_dict(m: Member, **over: Any) -> dict[str, Any]:
    inds = m.indicators(1, **over)
    return build_bundle(inds[0].publisher, inds)


def _sealed(m: Member, bundle: dict[str, Any]) -> bytes:
    return seal(bundle, m.files.signing_key())


def _edit_indicator(m: Member, change: Any) -> bytes:
    bundle = _bundle_dict(m)
    change(bundle["objects"][-1])
    return _sealed(m, bundle)


@pytest.mark.parametrize(
    ("case", "code", "fragment"),
    [
        ("malformed-json", "INVALID_ARGUMENT", "not JSON"),
        ("non-canonical", "INVALID_ARGUMENT", "canonical"),
        ("bad-signature", "INVALID_ARGUMENT", "does not verify"),
        ("unknown-key", "PERMISSION_DENIED", "not a registered key"),
        ("oversized", "RESOURCE_EXHAUSTED", "at most 200000"),
        ("too-many", "RESOURCE_EXHAUSTED", "at most 50"),
        ("no-valid-until", "INVALID_ARGUMENT", "valid_until is required"),
        ("past", "INVALID_ARGUMENT", "in the past"),
        ("too-far", "INVALID_ARGUMENT", "at most 365"),
        ("bad-pattern", "INVALID_ARGUMENT", "gated pattern"),
        ("wrong-collab", "INVALID_ARGUMENT", "bundle is for collaboration 'other'"),
        ("unknown-epoch", "INVALID_ARGUMENT", "key_epoch 7"),
        ("bad-digest", "INVALID_ARGUMENT", "32 lowercase hex"),
        ("extra-object", "INVALID_ARGUMENT", "not accepted"),
        ("unknown-canon", "INVALID_ARGUMENT", "canon_version: received 'canon/9'"),
    ],
)
def test_bad_input(world: dict[str, Any], case: str, code: str, fragment: str) -> None:
    pub: Member = world["pub"]
    now = now_ms()

    def payload() -> bytes:
        if case == "malformed-json":
            return b"{not json"
        if case == "non-canonical":
            return json.dumps(json.loads(pub.envelope(pub.indicators(1))), indent=1).encode()
        if case == "bad-signature":
            doc = json.loads(pub.envelope(pub.indicators(1)))
            sig = doc["signatures"][0]["sig"]
            doc["signatures"][0]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
            return rfc8785.dumps(doc)
        if case == "unknown-key":
            return seal(_bundle_dict(pub), Ed25519PrivateKey.generate())
        if case == "oversized":
            return b"x" * 200_001
        if case == "too-many":
            return pub.envelope(pub.indicators(51))
        if case == "no-valid-until":
            return _edit_indicator(pub, lambda o: o.pop("valid_until"))
        if case == "past":
            return pub.envelope(
                pub.indicators(
                    1, valid_from=now - timedelta(days=10), valid_until=now - timedelta(days=1)
                )
            )
        if case == "too-far":
            return pub.envelope(pub.indicators(1, days=400))
        if case == "bad-pattern":

            def bad(o: dict[str, Any]) -> None:
                ext = next(iter(o["extensions"].values()))
                ext.update(form="pattern")
                ext.pop("scheme"), ext.pop("key_epoch")
                ext.update(pattern_text="canon/1-folded")
                o.update(pattern="(a+)+b", pattern_type="pcre")

            return _edit_indicator(pub, bad)
        if case == "wrong-collab":
            inds = pub.indicators(1, collaboration="other", key_epoch=0)
            return pub.envelope(inds)
        if case == "unknown-epoch":
            return pub.envelope(pub.indicators(1, key_epoch=7))
        if case == "bad-digest":
            return _edit_indicator(pub, lambda o: o.update(pattern=blinded_pattern("ZZ")))
        if case == "unknown-canon":
            return _edit_indicator(
                pub, lambda o: next(iter(o["extensions"].values())).update(canon_version="canon/9")
            )
        bundle = _bundle_dict(pub)
        bundle["objects"].append(
            {"type": "malware", "id": "malware--6ba7b810-9dad-11d1-80b4-00c04fd430c8"}
        )
        return _sealed(pub, bundle)

    raw = payload()
    _rejected(world["hub"], lambda: pub.client().publish("sg-csam", raw), code, fragment)


def test_revisions_and_revocation(world: dict[str, Any]) -> None:
    hub: HubProcess = world["hub"]
    pub: Member = world["pub"]
    ind = pub.indicators(1)[0]
    pub.publish([ind])
    stale = indicator_to_stix(ind)
    assert stale["modified"]
    # same modified time again: refused, nothing stored
    again = pub.indicators(
        1,
        id=ind.id,
        value=ind.value,
        created=ind.created,
        modified=ind.modified,
        valid_from=ind.valid_from,
        valid_until=ind.valid_until + timedelta(days=1),
    )
    _rejected(hub, lambda: pub.publish(again), "FAILED_PRECONDITION", "must be later")
    gone = revoke(ind, ind.modified + timedelta(seconds=2))
    assert not pub.publish([gone]).duplicate
    with hub.db() as c:
        assert c.execute("SELECT revoked FROM indicators WHERE id=?", (ind.id,)).fetchone() == (1,)
    later = revoke(ind, ind.modified + timedelta(seconds=1))
    _rejected(hub, lambda: pub.publish([later]), "FAILED_PRECONDITION", "")
    assert Form.BLINDED and Kind.KEYWORD  # kinds are part of the model under test


def test_signing_key_rotation_and_revocation(world: dict[str, Any]) -> None:
    hub: HubProcess = world["hub"]
    m = hub.member("rotator", world["tmp"])
    old_key = m.files.signing_key()
    m.client()  # keep the connection; rotation uses its own
    cred_addr = hub.address
    # rotation talks to the credential's address: point it at this hub's port
    hub_json = m.data / "hub.json"
    doc = json.loads(hub_json.read_text())
    doc["hub"] = cred_addr
    hub_json.write_text(json.dumps(doc))
    new_kid, old_kid = rotate_signing_key(m.data)
    assert new_kid != old_kid and m.files.identity().key_id == new_kid
    stale = seal(_bundle_dict(m), old_key)
    _rejected(hub, lambda: m.client().publish("sg-csam", stale), "PERMISSION_DENIED", "revoked at")
    assert not m.publish(m.indicators(1)).duplicate
    assert hub.admin_cli("member", "revoke-key", "rotator", new_kid) == 0
    _rejected(hub, lambda: m.publish(m.indicators(1)), "PERMISSION_DENIED", "revoked at")
    m.close()


# --- times ahead of the hub's clock (issue 8, item 3) ---------------------------------------


def _ahead_case(case: str, now: datetime) -> tuple[str, datetime, dict[str, Any]]:
    """(field, its time, indicator fields) for one way of dating an indicator ahead."""
    if case == "valid_from-2099":
        when = now.replace(year=2099)
        return "valid_from", when, {"valid_from": when, "valid_until": when + timedelta(days=30)}
    if case == "modified-9999":
        when = now.replace(year=9999)
        return "modified", when, {"modified": when}
    if case == "created-1h":
        when = now + timedelta(hours=1)
        return "created", when, {"created": when, "modified": when}
    when = now + timedelta(seconds=301)  # modified-301s: just past the skew
    return "modified", when, {"modified": when}


@pytest.mark.parametrize(
    "case", ["valid_from-2099", "modified-9999", "created-1h", "modified-301s", "revoked-1d"]
)
def test_times_ahead_of_the_hub_clock_are_refused(world: dict[str, Any], case: str) -> None:
    pub: Member = world["pub"]
    now = now_ms()
    if case == "revoked-1d":  # a revocation dated tomorrow
        field, when = "modified", now + timedelta(days=1)
        ind = revoke(pub.indicators(1)[0], when)
    else:
        field, when, times = _ahead_case(case, now)
        ind = pub.indicators(1, **times)[0]
    raw = pub.envelope([ind])
    expected = (
        f"indicator {ind.id}: {field}: received {format_time(when)}, "
        "expected at most 300 s ahead of the clock ("
    )
    _rejected(
        world["hub"], lambda: pub.client().publish("sg-csam", raw), "INVALID_ARGUMENT", expected
    )


def test_times_within_the_clock_skew_are_accepted(world: dict[str, Any]) -> None:
    pub: Member = world["pub"]
    ahead = now_ms() + timedelta(seconds=60)  # a publisher's clock a minute fast
    inds = pub.indicators(1, valid_from=ahead, created=ahead, modified=ahead)
    before = world["hub"].state()
    assert not pub.publish(inds).duplicate
    assert world["hub"].state()[:2] == (before[0] + 1, before[1] + 1)


def test_configured_skew_and_ttl_reach_validation(tmp_path: Path) -> None:
    """The hub's own limits, set lower than the defaults, are the ones it applies."""
    hub = HubProcess(tmp_path / "hub", max_clock_skew_seconds=5, max_ttl_days=10)
    hub.start()
    try:
        assert hub.admin_cli("collab", "add", "sg-csam") == 0
        m = hub.member("strict", tmp_path)
        ahead = now_ms() + timedelta(seconds=60)
        _rejected(
            hub,
            lambda: m.publish(m.indicators(1, days=5, created=ahead, modified=ahead)),
            "INVALID_ARGUMENT",
            "at most 5 s ahead",
        )
        _rejected(
            hub, lambda: m.publish(m.indicators(1, days=11)), "INVALID_ARGUMENT", "at most 10 days"
        )
        assert not m.publish(m.indicators(1, days=10)).duplicate
        m.close()
    finally:
        hub.stop()
