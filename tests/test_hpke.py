"""Member encryption keys (issue 11, first slice): the HPKE primitive (``_hpke``) proven
against published vectors (RFC 9180 for X25519, draft-ietf-hpke-pq for the default
MLKEM768-X25519 suite), then sighub's own use of it: round trips, AAD/info binding,
wrong keys, truncation, key files and proofs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client._errors import KeyFileError
from sighub.client._hpke import (
    DEFAULT_SUITE,
    ENCRYPTION_KEY,
    SUITES,
    X25519_SUITE,
    EncryptionKey,
    HpkeError,
    ProvedKey,
    check_proof,
    check_public,
    load_key,
    open_,
    prove,
    seal,
)

VECTORS = Path(__file__).parent / "vectors" / "hpke"
KDF = {1: hpke.KDF.HKDF_SHA256}
AEAD = {1: hpke.AEAD.AES_128_GCM, 3: hpke.AEAD.CHACHA20_POLY1305}
KEM = {0x20: hpke.KEM.X25519, 0x647A: hpke.KEM.MLKEM768_X25519}
SUITE_OF_KEM = {0x20: X25519_SUITE, 0x647A: DEFAULT_SUITE}


def _vectors(name: str) -> list[dict[str, Any]]:
    doc = json.loads((VECTORS / name).read_text())
    assert doc["source"]["commit"] and doc["vectors"]
    return list(doc["vectors"])


ALL_VECTORS = _vectors("rfc9180.json") + _vectors("draft-ietf-hpke-pq.json")


# -- the published vectors --------------------------------------------------------------
@pytest.mark.parametrize("v", ALL_VECTORS, ids=[v["suite"] for v in ALL_VECTORS])
def test_published_vectors_open(v: dict[str, Any]) -> None:
    """The vector's ciphertext opens under its recipient key to its plaintext.  The key
    pair is rebuilt from the published private key by ``EncryptionKey`` (for
    MLKEM768-X25519 that is X-Wing's seed expansion), so the public key must match too.
    The vectors bind a non-empty AAD, which ``cryptography``'s public single-shot API
    does not take: its own vector hook ``_decrypt_with_aad`` reads them (the public
    ``decrypt`` sighub calls is that function with an empty AAD)."""
    assert v["mode"] == 0
    h = bytes.fromhex
    key = EncryptionKey(SUITE_OF_KEM[v["kem_id"]], h(v["skRm"]))
    assert key.public == h(v["pkRm"])
    suite = hpke.Suite(KEM[v["kem_id"]], KDF[v["kdf_id"]], AEAD[v["aead_id"]])
    e = v["encryption"]
    private = key._private  # the library's key object, as sighub's open_ passes it
    opened = rust_openssl.hpke._decrypt_with_aad(
        suite, h(v["enc"]) + h(e["ct"]), private, info=h(v["info"]), aad=h(e["aad"])
    )
    assert opened == h(e["pt"])
    # a changed AAD: refused
    with pytest.raises(InvalidTag):
        rust_openssl.hpke._decrypt_with_aad(
            suite, h(v["enc"]) + h(e["ct"]), private, info=h(v["info"]), aad=h(e["aad"]) + b"!"
        )


def test_the_x25519_vector_key_is_the_rfcs() -> None:
    """The X25519 recipient key as the RFC publishes it, read by the library directly."""
    for v in _vectors("rfc9180.json"):
        sk = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["skRm"]))
        assert sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex() == v["pkRm"]


def test_sighub_suites_are_the_vectors_suites() -> None:
    """The default suite is exactly the draft's vector suite, the alternative the RFC's
    A.2 suite: same KEM, HKDF-SHA256, ChaCha20Poly1305."""
    covered = {(SUITE_OF_KEM[v["kem_id"]], v["kdf_id"], v["aead_id"]) for v in ALL_VECTORS}
    assert {(name, 1, 3) for name in SUITES} <= covered
    assert SUITES[DEFAULT_SUITE].kem is hpke.KEM.MLKEM768_X25519


# -- sighub's use -------------------------------------------------------------------------
SECRET = bytes(range(32))


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_round_trip_and_sizes(suite: str) -> None:
    key = EncryptionKey.generate(suite)
    assert len(key.public) == SUITES[suite].public_size
    sealed = seal(suite, key.public, SECRET, b"collab sg-csam epoch 3", b"wrap")
    assert len(sealed) == SUITES[suite].enc_size + len(SECRET) + 16
    assert open_(key, sealed, b"collab sg-csam epoch 3", b"wrap") == SECRET
    again = seal(suite, key.public, SECRET, b"collab sg-csam epoch 3", b"wrap")
    assert again != sealed  # a fresh encapsulation each time


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_aad_and_info_are_bound(suite: str) -> None:
    key = EncryptionKey.generate(suite)
    sealed = seal(suite, key.public, SECRET, b"aad", b"info")
    for aad, info in [
        (b"aaD", b"info"),
        (b"aad", b"infO"),
        (b"", b"infoaad"),  # the same bytes split otherwise: the length prefix tells
        (b"infoaad", b""),
        (b"aad", b""),
    ]:
        with pytest.raises(HpkeError, match="does not open under this key"):
            key.open_(sealed, aad, info)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_wrong_key_altered_and_truncated_ciphertexts_fail(suite: str) -> None:
    key, other = EncryptionKey.generate(suite), EncryptionKey.generate(suite)
    sealed = seal(suite, key.public, SECRET, b"a", b"i")
    with pytest.raises(HpkeError, match=f"key {other.key_id}.*does not open"):
        other.open_(sealed, b"a", b"i")
    enc = SUITES[suite].enc_size
    for at in (0, enc - 1, enc, len(sealed) - 1):  # the KEM part, the AEAD part, the tag
        altered = bytearray(sealed)
        altered[at] ^= 1
        with pytest.raises(HpkeError, match="does not open"):
            key.open_(bytes(altered), b"a", b"i")
    with pytest.raises(HpkeError, match="does not open"):
        key.open_(sealed[:-1], b"a", b"i")
    with pytest.raises(HpkeError, match=f"ciphertext of {enc + 15} bytes, expected at least"):
        key.open_(sealed[: enc + 15], b"a", b"i")
    with pytest.raises(HpkeError, match="ciphertext of 0 bytes"):
        key.open_(b"", b"a", b"i")


def test_seal_refuses_unknown_suites_and_bad_keys() -> None:
    key = EncryptionKey.generate(X25519_SUITE)
    with pytest.raises(HpkeError, match="suite 'x448' is not one of"):
        seal("x448", key.public, SECRET, b"", b"")
    with pytest.raises(HpkeError, match="32 bytes, expected a 1216-byte"):
        seal(DEFAULT_SUITE, key.public, SECRET, b"", b"")
    hybrid = EncryptionKey.generate(DEFAULT_SUITE).public
    with pytest.raises(HpkeError, match="not a valid mlkem768x25519"):
        # an ML-KEM key whose coefficients are out of range (FIPS 203's modulus check)
        seal(DEFAULT_SUITE, b"\xff" * 1184 + hybrid[1184:], SECRET, b"", b"")
    check_public(DEFAULT_SUITE, hybrid)
    with pytest.raises(HpkeError, match="expected a 32-byte"):
        check_public(X25519_SUITE, hybrid)


def test_errors_never_show_the_private_key(tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    seed = json.loads(key.file_bytes())["seed"]
    assert seed not in repr(key) and seed not in str(key)
    with pytest.raises(HpkeError) as err:
        key.open_(b"\0" * 2000, b"", b"")
    assert seed not in str(err.value) and key.key_id in str(err.value)


def test_key_files_are_0600_and_round_trip(tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    path = tmp_path / ENCRYPTION_KEY
    key.write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_key(path)
    assert (loaded.suite, loaded.public) == (key.suite, key.public)
    sealed = seal(key.suite, key.public, SECRET, b"", b"")
    assert loaded.open_(sealed, b"", b"") == SECRET
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        key.write(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="expected 0600"):
        load_key(path)
    bad = tmp_path / "bad.key"
    bad.write_text(json.dumps({"v": 1, "suite": "x448", "seed": "AA=="}))
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match="suite 'x448'"):
        load_key(bad)
    # a seed that is not even ASCII (b64decode raises a bare ValueError): the same error
    bad.unlink()
    bad.write_text(json.dumps({"v": 1, "suite": key.suite, "seed": "s\u00e9ed"}))
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an encryption key file"):
        load_key(bad)


def test_proofs_bind_suite_and_key_to_the_signing_key() -> None:
    signing, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    raw = signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = EncryptionKey.generate()
    proof = prove(signing, key.suite, key.public)
    check_proof(raw, key.suite, key.public, proof)
    x = EncryptionKey.generate(X25519_SUITE)
    for args in [
        (raw, X25519_SUITE, key.public, proof),  # the suite named otherwise
        (raw, key.suite, x.public, proof),  # another key
        (other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw), key.suite,
         key.public, proof),  # another signer
    ]:  # fmt: skip
        with pytest.raises(HpkeError, match="does not verify under the signing key"):
            check_proof(*args)


def test_proved_key_fields() -> None:
    proved = ProvedKey(X25519_SUITE, b"k" * 32, b"p" * 64)
    assert ProvedKey.from_fields(proved.to_fields(), "leaf") == proved
    assert ProvedKey.from_fields({"member": "s3ller"}, "leaf") is None
    with pytest.raises(HpkeError, match="needs all of"):
        ProvedKey.from_fields({"encryption_key": "AA=="}, "leaf")
    with pytest.raises(HpkeError, match="not base64"):
        ProvedKey.from_fields({**proved.to_fields(), "encryption_proof": "%%"}, "leaf")
