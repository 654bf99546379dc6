"""Keys a hub alone cannot mint (issue 10, item 6): the admin-signed chain of a member's
first key (``_grant``) and the key ring each member builds from the log (``_keyring``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client import _leaves
from sighub.client._envelope import canonical_json, key_id
from sighub.client._grant import (
    ROTATE_CONTEXT,
    Chain,
    KeyChainError,
    attest_key,
    bind_key,
    check_attestation,
    check_chain,
    issue_grant,
)
from sighub.client._hpke import DEFAULT_SUITE, X25519_SUITE, EncryptionKey, ProvedKey, prove
from sighub.client._keyring import NO_CHAIN, KeyRing, LoggedEncryptionKey
from sighub.client._keys import identity_for
from sighub.client._logcheck import AlarmKind, LogAlarm

ORIGIN = "sighub/test-hub"
ROLES = ["publisher", "subscriber"]


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _chain(admin: Ed25519PrivateKey, member: Ed25519PrivateKey, name: str = "pub") -> Chain:
    grant, signature, enrollment = issue_grant(admin, ORIGIN, name, ROLES)
    return Chain(grant, signature, bind_key(enrollment, grant, _raw(member)))


def _enroll_leaf(name: str, key: Ed25519PrivateKey, chain: Chain | None) -> dict[str, Any]:
    raw = _leaves.member_enroll(
        name, identity_for(name), ROLES, key_id(key.public_key()), _raw(key), chain
    )
    return _leaves.parse_leaf(raw)


# -- the chain ---------------------------------------------------------------------------
def test_a_chain_verifies_for_exactly_its_member_log_roles_and_key() -> None:
    admin, member = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    chain = _chain(admin, member)
    check_chain(_raw(admin), ORIGIN, "pub", ROLES, _raw(member), chain)
    other = Ed25519PrivateKey.generate()
    for args, words in [
        ((_raw(other), ORIGIN, "pub", ROLES, _raw(member)), r"\(admin\): signature does not"),
        ((_raw(admin), "sighub/other", "pub", ROLES, _raw(member)), "origin is"),
        ((_raw(admin), ORIGIN, "pub2", ROLES, _raw(member)), "member is"),
        ((_raw(admin), ORIGIN, "pub", ["admin"], _raw(member)), "roles is"),
        ((_raw(admin), ORIGIN, "pub", ROLES, _raw(other)), "binding of key"),
    ]:
        with pytest.raises(KeyChainError, match=words):
            check_chain(*args, chain)


def test_a_grant_edited_after_signing_fails() -> None:
    admin, member = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    chain = _chain(admin, member)
    doc = json.loads(chain.grant)
    doc["member"] = "pub2"
    edited = Chain(canonical_json(doc), chain.grant_signature, chain.binding)
    with pytest.raises(KeyChainError, match=r"\(admin\): signature does not verify"):
        check_chain(_raw(admin), ORIGIN, "pub2", ROLES, _raw(member), edited)


def test_a_chain_needs_all_three_fields() -> None:
    assert Chain.from_fields({"member": "pub"}, "leaf") is None
    with pytest.raises(KeyChainError, match="a chain needs grant"):
        Chain.from_fields({"grant": "AA=="}, "leaf")
    with pytest.raises(KeyChainError, match="not base64"):
        Chain.from_fields({"grant": "%%", "grant_signature": "", "binding": ""}, "leaf")


def test_an_attestation_names_one_key() -> None:
    admin, member = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    raw, signature = attest_key(admin, ORIGIN, "pub", _raw(member))
    check_attestation(_raw(admin), ORIGIN, "pub", _raw(member), raw, signature)
    with pytest.raises(KeyChainError, match="another key"):
        other = _raw(Ed25519PrivateKey.generate())
        check_attestation(_raw(admin), ORIGIN, "pub", other, raw, signature)
    with pytest.raises(KeyChainError, match="member is"):
        check_attestation(_raw(admin), ORIGIN, "pub2", _raw(member), raw, signature)
    with pytest.raises(KeyChainError, match="signature does not verify"):
        check_attestation(_raw(member), ORIGIN, "pub", _raw(member), raw, signature)


# -- the key ring ------------------------------------------------------------------------
def test_the_ring_takes_chained_keys_and_flags_keys_without_one() -> None:
    admin = Ed25519PrivateKey.generate()
    good, bare = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    ring.apply(3, _enroll_leaf("pub", good, _chain(admin, good)))
    ring.apply(4, _enroll_leaf("pub2", bare, None))
    directory = ring.directory()
    assert directory[key_id(good.public_key())][3:] == (None, 3, "")
    assert directory[key_id(bare.public_key())][5] == NO_CHAIN
    # a credential that pins no admin key (enrolled before chains) does not require them
    legacy = KeyRing(ORIGIN, None)
    legacy.apply(4, _enroll_leaf("pub2", bare, None))
    assert legacy.directory()[key_id(bare.public_key())][5] == ""


def _alarm(ring: KeyRing, seq: int, leaf: dict[str, Any], words: str) -> None:
    with pytest.raises(LogAlarm, match=words) as err:
        ring.apply(seq, leaf)
    assert err.value.kind is AlarmKind.FORGED_KEY and err.value.evidence["sequence"] == seq


def test_forged_key_leaves_are_alarms() -> None:
    admin, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    # a grant signed by another key than the pinned admin key
    _alarm(ring, 2, _enroll_leaf("pub", key, _chain(Ed25519PrivateKey.generate(), key)), "chain")
    # a grant for another member
    _alarm(ring, 2, _enroll_leaf("pub2", key, _chain(admin, key, "pub")), "member is")
    # an identity that is not the one the name derives
    leaf = _enroll_leaf("pub", key, _chain(admin, key))
    _alarm(ring, 2, {**leaf, "identity": identity_for("pub2")}, "identity")
    # a key id that does not name the public key
    _alarm(ring, 2, {**leaf, "key_id": "ed25519:" + "0" * 32}, "does not name")
    assert len(ring) == 0 and ring.changed() == []


def test_rotations_inherit_the_chain_and_need_the_old_keys_proof() -> None:
    admin = Ed25519PrivateKey.generate()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    ring.apply(2, _enroll_leaf("pub", old, _chain(admin, old)))
    kid_old, kid_new = key_id(old.public_key()), key_id(new.public_key())
    bad = _leaves.key_rotate("pub", kid_new, _raw(new), kid_old, b"\0" * 64)
    _alarm(ring, 5, _leaves.parse_leaf(bad), "proof does not verify")
    proof = old.sign(ROTATE_CONTEXT + _raw(new))
    other = _leaves.key_rotate("pub2", kid_new, _raw(new), kid_old, proof)
    _alarm(ring, 5, _leaves.parse_leaf(other), "not a current key of that member")
    ring.apply(5, _leaves.parse_leaf(_leaves.key_rotate("pub", kid_new, _raw(new), kid_old, proof)))
    directory = ring.directory()
    assert directory[kid_old][3] == 5  # revoked by the rotation
    assert directory[kid_new][3:] == (None, 5, "")
    ring.apply(9, _leaves.parse_leaf(_leaves.key_revoke("pub", kid_new)))
    assert ring.directory()[kid_new][3] == 9
    assert {k.key_id for k in ring.changed()} == {kid_old, kid_new}


def test_an_attestation_chains_an_old_key_and_a_forged_one_alarms() -> None:
    admin, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    kid = key_id(key.public_key())
    ring = KeyRing(ORIGIN, _raw(admin))
    ring.apply(2, _enroll_leaf("pub", key, None))
    assert ring.directory()[kid][5] == NO_CHAIN
    raw, signature = attest_key(Ed25519PrivateKey.generate(), ORIGIN, "pub", _raw(key))
    forged = _leaves.key_attest("pub", kid, _raw(key), raw, signature)
    _alarm(ring, 3, _leaves.parse_leaf(forged), "attestation that fails")
    raw, signature = attest_key(admin, ORIGIN, "pub", _raw(key))
    ring.apply(3, _leaves.parse_leaf(_leaves.key_attest("pub", kid, _raw(key), raw, signature)))
    assert ring.directory()[kid][5] == ""


def test_the_snapshot_is_new_after_each_change() -> None:
    admin, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    first = ring.directory()
    assert ring.directory() is first  # unchanged: the same object
    ring.apply(2, _enroll_leaf("pub", key, _chain(admin, key)))
    second = ring.directory()
    assert second is not first and first == {}  # the old snapshot is left as it was
    leaf = _enroll_leaf("pub", key, _chain(admin, key))
    ring.apply(6, leaf)  # the same key listed again (a pre-log hub's backfill): ignored
    assert ring.directory() is second
    b64 = base64.b64encode(b"x").decode()
    assert (
        _leaves.parse_leaf(_leaves.key_attest("pub", key_id(key.public_key()), b"k", b"x", b"x"))[
            "signature"
        ]
        == b64
    )


# -- encryption keys (issue 11) ------------------------------------------------------------
def _proved(signing: Ed25519PrivateKey, suite: str = DEFAULT_SUITE) -> ProvedKey:
    key = EncryptionKey.generate(suite)
    return ProvedKey(key.suite, key.public, prove(signing, key.suite, key.public))


def _enroll_with(
    name: str, key: Ed25519PrivateKey, chain: Chain | None, enc: ProvedKey
) -> dict[str, Any]:
    raw = _leaves.member_enroll(
        name, identity_for(name), ROLES, key_id(key.public_key()), _raw(key), chain, enc
    )
    return _leaves.parse_leaf(raw)


def _encryption_leaf(name: str, signer: Ed25519PrivateKey, enc: ProvedKey) -> dict[str, Any]:
    return _leaves.parse_leaf(_leaves.key_encryption(name, enc, key_id(signer.public_key())))


def test_the_ring_tracks_each_members_current_encryption_key() -> None:
    admin, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    first = _proved(key)
    ring.apply(2, _enroll_with("pub", key, _chain(admin, key), first))
    assert ring.encryption_key("pub") == (DEFAULT_SUITE, first.public)
    assert ring.encryption_key("pub2") is None
    # rotated, to the X25519 suite: the latest leaf wins
    second = _proved(key, X25519_SUITE)
    ring.apply(7, _encryption_leaf("pub", key, second))
    assert ring.encryption_key("pub") == (X25519_SUITE, second.public)
    record = ring.encryption_record("pub")
    assert record is not None and (record.since, record.key_id) == (7, key_id(key.public_key()))
    # a signing-key rotation keeps the encryption key; the new signing key proves the next
    new = Ed25519PrivateKey.generate()
    proof = key.sign(ROTATE_CONTEXT + _raw(new))
    kid_old, kid_new = key_id(key.public_key()), key_id(new.public_key())
    ring.apply(8, _leaves.parse_leaf(_leaves.key_rotate("pub", kid_new, _raw(new), kid_old, proof)))
    assert ring.encryption_key("pub") == (X25519_SUITE, second.public)
    third = _proved(new)
    ring.apply(9, _encryption_leaf("pub", new, third))
    assert ring.encryption_key("pub") == (DEFAULT_SUITE, third.public)
    assert [e.member for e in ring.changed_encryption()] == ["pub"]
    # what the daemon stores is what a restarted daemon rebuilds from
    rows = [e.row() for e in ring.changed_encryption()]
    again = KeyRing(ORIGIN, _raw(admin), ring.changed(), (LoggedEncryptionKey(*r) for r in rows))
    assert again.encryption_key("pub") == (DEFAULT_SUITE, third.public)
    ring.saved()
    assert ring.changed_encryption() == []


def test_an_old_format_enrollment_has_no_encryption_key() -> None:
    admin, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    ring.apply(2, _enroll_leaf("pub", key, _chain(admin, key)))
    assert ring.encryption_key("pub") is None and ring.changed_encryption() == []
    enc = _proved(key)  # its first, registered later
    ring.apply(3, _encryption_leaf("pub", key, enc))
    assert ring.encryption_key("pub") == (DEFAULT_SUITE, enc.public)


def test_forged_encryption_keys_are_alarms() -> None:
    admin, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    chain = _chain(admin, key)
    # an enrollment whose encryption key another key proved: nothing of it is taken
    _alarm(ring, 2, _enroll_with("pub", key, chain, _proved(other)), "did not prove")
    assert len(ring) == 0 and ring.encryption_key("pub") is None
    # only some of the encryption fields
    partial = {**_enroll_leaf("pub", key, chain), "encryption_key": "AA=="}
    _alarm(ring, 2, partial, "needs all of")
    good = _proved(key)
    ring.apply(2, _enroll_with("pub", key, chain, good))
    # a key.encryption the named signing key did not prove
    forged = _proved(other)
    _alarm(ring, 5, _encryption_leaf("pub", key, forged), "did not prove")
    # one proved by a key of another member, or by a key the log never held
    ring.apply(3, _enroll_leaf("pub2", other, _chain(admin, other, "pub2")))
    _alarm(ring, 5, _encryption_leaf("pub", other, forged), "not a current key of that member")
    stranger = Ed25519PrivateKey.generate()
    _alarm(ring, 5, _encryption_leaf("pub", stranger, _proved(stranger)), "not a current key")
    # one proved by a revoked key
    ring.apply(6, _leaves.parse_leaf(_leaves.key_revoke("pub", key_id(key.public_key()))))
    _alarm(ring, 7, _encryption_leaf("pub", key, _proved(key)), "not a current key")
    assert ring.encryption_key("pub") == (DEFAULT_SUITE, good.public)


def test_an_encryption_key_is_withheld_when_its_signer_is_refused_or_it_is_unusable() -> None:
    admin, bare = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing(ORIGIN, _raw(admin))
    enc = _proved(bare)
    ring.apply(2, _enroll_with("pub", bare, None, enc))  # no admin-signed chain
    record = ring.encryption_record("pub")
    assert record is not None and record.flaw == "" and ring.encryption_key("pub") is None
    raw, signature = attest_key(admin, ORIGIN, "pub", _raw(bare))
    kid = key_id(bare.public_key())
    ring.apply(3, _leaves.parse_leaf(_leaves.key_attest("pub", kid, _raw(bare), raw, signature)))
    assert ring.encryption_key("pub") == (DEFAULT_SUITE, enc.public)  # chained now
    # a suite this client does not know, proved by the member: kept with the reason
    odd = ProvedKey("x448-sha512-aes256gcm", b"k" * 56, prove(bare, "x448-sha512-aes256gcm",
                                                              b"k" * 56))  # fmt: skip
    ring.apply(4, _encryption_leaf("pub", bare, odd))
    record = ring.encryption_record("pub")
    assert record is not None and "is not one of" in record.flaw
    assert ring.encryption_key("pub") is None


def test_a_reader_thread_sees_whole_snapshots_while_keys_change() -> None:
    """The daemon checks envelopes ahead in a reader thread, against ``directory()``, while
    the main thread applies leaves: every snapshot it takes is a whole dict, never one
    being changed, and the last one holds every revocation."""
    import threading

    admin = Ed25519PrivateKey.generate()
    keys = [Ed25519PrivateKey.generate() for _ in range(300)]
    ring = KeyRing(ORIGIN, _raw(admin))
    for i, key in enumerate(keys):
        ring.apply(i + 1, _enroll_leaf("pub", key, _chain(admin, key)))
    done, errors = threading.Event(), []

    def read() -> None:
        while not done.is_set():
            try:
                snap = ring.directory()
                sum(1 for _ in snap.items())
            except RuntimeError as exc:  # "dictionary changed size during iteration"
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i, key in enumerate(keys):
        ring.apply(
            1000 + i, _leaves.parse_leaf(_leaves.key_revoke("pub", key_id(key.public_key())))
        )
    done.set()
    reader.join()
    assert errors == []
    assert all(entry[3] is not None for entry in ring.directory().values())
