"""C2SP signed notes, checkpoints and cosignatures: published vectors byte for byte, round
trips, and one test per way a hostile note is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sighub.client._checkpoint import (
    MAX_TIMESTAMP,
    TIME_EXTENSION,
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    cosignature_message,
    cosignature_time,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from sighub.client._errors import NoteError, SighubError
from sighub.client._note import (
    MAX_SIGNATURES,
    Ed25519Signer,
    Ed25519Verifier,
    Note,
    Signature,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "note-c2sp.json").read_text("utf-8")
)
PETER_SKEY = VECTORS["sign"][0]["skey"]
PETER_VKEY = VECTORS["sign"][0]["vkey"]
PETER_NOTE: str = VECTORS["sign"][0]["signed"]
PETER = Ed25519Verifier.from_vkey(PETER_VKEY)
ROOT = bytes(range(32))
LOG = Ed25519Signer("hub.example/🧀🍕", bytes(32))
WITNESS = Cosigner("witness.example/s3ller", bytes([7]) * 32)


def _raw(vector: dict[str, Any]) -> bytes:
    if "note_hex" in vector:
        return bytes.fromhex(vector["note_hex"])
    return str(vector["note"]).encode("utf-8")


def _rule(exc: pytest.ExceptionInfo[NoteError]) -> str:
    return exc.value.rule


# --- published vectors -------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["sign"], ids=lambda v: v["source"][-40:])
def test_signing_is_byte_exact(vector: dict[str, Any]) -> None:
    signer = Ed25519Signer.from_skey(vector["skey"])
    assert signer.skey == vector["skey"]
    assert signer.verifier.vkey == vector["vkey"]
    assert sign_note(vector["text"], signer).encode() == vector["signed"].encode()
    opened = open_note(vector["signed"].encode(), [Ed25519Verifier.from_vkey(vector["vkey"])])
    assert opened.text == vector["text"]


@pytest.mark.parametrize("vector", VECTORS["open"], ids=lambda v: v["source"][-40:])
def test_open_verifies_known_keys_and_ignores_unknown_ones(vector: dict[str, Any]) -> None:
    verifiers = [Ed25519Verifier.from_vkey(v) for v in vector["vkeys"]]
    opened = open_note(vector["note"].encode(), verifiers)
    assert opened.text == vector["text"]
    assert [s.name for s in opened.verified] == vector["verified"]
    unverified = [s.name for s in opened.note.signatures if s not in opened.verified]
    assert unverified == vector["unverified"]
    assert opened.note.encode() == vector["note"].encode()  # re-encoding keeps every line


@pytest.mark.parametrize("vector", VECTORS["unverifiable"], ids=lambda v: v["source"][-40:])
def test_a_note_without_a_known_signer_is_refused(vector: dict[str, Any]) -> None:
    note = parse_note(vector["note"].encode())
    assert note.text == vector["text"]
    assert [s.name for s in note.signatures] == vector["signers"]
    with pytest.raises(NoteError) as exc:
        open_note(vector["note"].encode(), [PETER])
    assert _rule(exc) == "verification"
    assert "PeterNeumann+c74f20a3" in str(exc.value)


@pytest.mark.parametrize("vector", VECTORS["reject_note"], ids=lambda v: v["rule"])
def test_go_malformed_notes_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(NoteError) as exc:
        open_note(_raw(vector), [PETER])
    assert _rule(exc) == vector["rule"]


@pytest.mark.parametrize("vector", VECTORS["reject_vkey"], ids=lambda v: v["vkey"][:30])
def test_bad_verifier_keys_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(NoteError):
        Ed25519Verifier.from_vkey(vector["vkey"])
    with pytest.raises(NoteError):
        CosignatureVerifier.from_vkey(vector["vkey"])


def test_every_mangling_of_a_vkey_or_skey_is_refused() -> None:
    """Go's TestNewVerifier and TestNewSigner: each proper substring and each single-byte
    increment of a key fails; no error about a signer key quotes its secret."""
    secret = PETER_SKEY.split("+", 4)[4]  # base64 of 0x01 || seed
    for key, parse in ((PETER_VKEY, Ed25519Verifier.from_vkey), (PETER_SKEY, _signer)):
        for i in range(len(key) + 1):
            for j in range(i + 1, len(key) + 1):
                if (i, j) != (0, len(key)):
                    _refused(parse, key[i:j], secret)
        for i in range(len(key)):
            _refused(parse, key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :], secret)


def _signer(skey: str) -> object:
    return Ed25519Signer.from_skey(skey)


def _refused(parse: Any, key: str, secret: str) -> None:
    with pytest.raises(NoteError) as exc:
        parse(key)
    message = str(exc.value)
    assert not any(secret[i : i + 6] in message for i in range(2, len(secret) - 6))


@pytest.mark.parametrize("vector", VECTORS["cosigner_vkeys"], ids=lambda v: v["vkey"][:20])
def test_cosigner_vkeys_of_type_4_and_type_1(vector: dict[str, Any]) -> None:
    verifier = CosignatureVerifier.from_vkey(vector["vkey"])
    assert f"{verifier.key_id:08x}" == vector["key_id"]
    assert CosignatureVerifier.from_vkey(verifier.vkey) == verifier
    assert verifier.vkey.split("+", 2)[2].startswith("B")  # base64 of type byte 0x04


@pytest.mark.parametrize("vector", VECTORS["checkpoints"], ids=lambda v: v["origin"][:30])
def test_published_checkpoints_parse_and_format_back(vector: dict[str, Any]) -> None:
    checkpoint = parse_checkpoint(vector["text"])
    assert checkpoint.origin == vector["origin"]
    assert checkpoint.size == vector["size"]
    assert checkpoint.root.hex() == vector["root_hex"]
    assert list(checkpoint.extensions) == vector["extensions"]
    assert checkpoint.body == vector["text"]


def test_cosignature_message_matches_the_spec_example() -> None:
    vector = VECTORS["cosignature_message"]
    message = cosignature_message(vector["body"], vector["timestamp"])
    assert message == vector["message"].encode()


@pytest.mark.parametrize("vector", VECTORS["cosignature_time"], ids=lambda v: str(v["time"]))
def test_cosignature_time_is_read_from_the_signature(vector: dict[str, Any]) -> None:
    raw = base64.b64decode(vector["base64"])
    signature = Signature("w", int.from_bytes(raw[:4], "big"), raw[4:])
    if vector["time"] is None:
        with pytest.raises(NoteError) as exc:
            cosignature_time(signature)
        assert _rule(exc) == "length"
    else:
        assert cosignature_time(signature) == vector["time"]


@pytest.mark.parametrize("vector", VECTORS["witnessed"], ids=lambda v: v["log_vkey"][:30])
def test_a_real_witnessed_checkpoint_opens(vector: dict[str, Any]) -> None:
    log = Ed25519Verifier.from_vkey(vector["log_vkey"])
    cosigners = [CosignatureVerifier.from_vkey(v) for v in vector["cosigner_vkeys"]]
    raw = vector["note"].encode()
    opened = open_checkpoint(raw, log, cosigners, origin=vector["note"].split("\n")[0])
    assert {c.name: c.time for c in opened.cosignatures} == vector["times"]
    assert opened.checkpoint.body == vector["note"].split("\n\n")[0] + "\n"
    # Without the witnesses, their lines are ignored; with one altered, the note is refused.
    assert open_checkpoint(raw, log).cosignatures == ()
    line = b"ArmoredWitness-floral-sky x88LbQAAAABnGRr"
    forged = raw.replace(line + b"D", line + b"E")  # one second later: the signature fails
    with pytest.raises(NoteError) as exc:
        open_checkpoint(forged, log, cosigners)
    assert _rule(exc) == "signature line 3"


@pytest.mark.parametrize("vector", VECTORS["cosigned_unknown_log"], ids=lambda v: v["note"][:20])
def test_real_cosignatures_verify_beside_an_unknown_log_signature(vector: dict[str, Any]) -> None:
    cosigners = [CosignatureVerifier.from_vkey(v) for v in vector["cosigner_vkeys"]]
    opened = open_note(vector["note"].encode(), cosigners)
    assert {s.name: cosignature_time(s) for s in opened.verified} == vector["times"]
    assert opened.note.signatures[0].name == "pixel_transparency_log"  # ECDSA: kept, unused
    assert opened.note.signatures[0] not in opened.verified


@pytest.mark.parametrize("vector", VECTORS["cosign"], ids=lambda v: str(v["timestamp"]))
def test_cosigning_is_byte_exact(vector: dict[str, Any]) -> None:
    cosigner = Cosigner.from_skey(vector["skey"])  # a type-0x01 key, used for cosigning
    assert Cosigner.from_skey(cosigner.skey) == cosigner
    assert cosigner.verifier == CosignatureVerifier.from_vkey(vector["vkey"])
    signature = cosigner.cosign(parse_checkpoint(vector["checkpoint"]), vector["timestamp"])
    assert signature.line == vector["line"]
    log = Ed25519Verifier.from_vkey(vector["log_vkey"])
    witnessed = parse_note(vector["signed_by_log"].encode()).with_signatures(signature)
    opened = open_checkpoint(witnessed.encode(), log, [cosigner.verifier])
    assert [(c.name, c.time) for c in opened.cosignatures] == [("witness", vector["timestamp"])]


# --- round trips -------------------------------------------------------------------------

_LINE = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\n", min_codepoint=32),
    min_size=1,
    max_size=40,
)
_NAME = st.text(
    st.characters(exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"], exclude_characters="+"),
    min_size=1,
    max_size=30,
).filter(lambda s: not any(c.isspace() for c in s))


@given(
    origin=_LINE,
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE.filter(lambda s: s.partition(" ")[0] != TIME_EXTENSION), max_size=3),
    time=st.none() | st.integers(0, MAX_TIMESTAMP),
)
def test_checkpoint_format_then_parse_is_identity(
    origin: str, size: int, root: bytes, extensions: list[str], time: int | None
) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    if time is not None:
        checkpoint = checkpoint.with_time(time)
    assert parse_checkpoint(checkpoint.body) == checkpoint
    assert checkpoint.time == time


@given(
    lines=st.lists(st.just("") | _LINE, min_size=1, max_size=6),
    names=st.lists(_NAME, min_size=1, max_size=4, unique=True),
    seed=st.binary(min_size=32, max_size=32),
)
def test_sign_then_open_verifies_every_signer(
    lines: list[str], names: list[str], seed: bytes
) -> None:
    text = "".join(f"{line}\n" for line in lines)
    signers = [Ed25519Signer(name, seed) for name in names]
    raw = sign_note(text, *signers).encode()
    assert parse_note(raw) == sign_note(text, *signers)
    opened = open_note(raw, [s.verifier for s in signers])
    assert opened.text == text
    assert [s.name for s in opened.verified] == names


@given(position=st.integers(0, 200), byte=st.integers(0, 255))
def test_changing_any_byte_of_a_signed_text_is_caught(position: int, byte: int) -> None:
    raw = bytearray(PETER_NOTE.encode())
    text_bytes = len(VECTORS["sign"][0]["text"].encode())
    position %= text_bytes
    if raw[position] == byte:
        return
    raw[position] = byte
    with pytest.raises(NoteError):
        open_note(bytes(raw), [PETER])


@given(
    timestamp=st.integers(0, MAX_TIMESTAMP),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_cosign_then_verify(timestamp: int, size: int, root: bytes) -> None:
    checkpoint = Checkpoint("hub.example/log", size, root).with_time(timestamp)
    signed = parse_note(sign_checkpoint(checkpoint, LOG))
    raw = signed.with_signatures(WITNESS.cosign(checkpoint, timestamp)).encode()
    opened = open_checkpoint(raw, LOG.verifier, [WITNESS.verifier], origin="hub.example/log")
    assert opened.checkpoint == checkpoint
    assert opened.checkpoint.time == timestamp
    assert [c.time for c in opened.cosignatures] == [timestamp]


# --- refusals ----------------------------------------------------------------------------


def _signed(text: str = "hub.example/log\n3\n" + base64.b64encode(ROOT).decode() + "\n") -> bytes:
    return sign_note(text, LOG).encode()


@pytest.mark.parametrize(
    ("raw", "rule", "words"),
    [
        (b"a\xc3\n\n" + PETER_NOTE.encode()[-100:], "UTF-8", "offset 1"),
        (PETER_NOTE.encode()[:-1], "final newline", "ending in U+000A"),
        (b"a\tb\n" + PETER_NOTE.encode(), "control character", "U+0009"),
        (PETER_NOTE.encode().replace(b"\n\n", b"\r\n\n"), "control character", "U+000D"),
        (b"text\n\n\xe2\x80\x94 PeterNeumann x08go/!!\n", "signature line 1", "base64"),
        (PETER_NOTE.encode().replace(b"AM=\n", b"AN=\n"), "signature line 1", "canonical"),
        (b"text\n\n\xe2\x80\x94 PeterNeumann AAAA\n", "signature line 1", "4-byte key ID"),
        (b"text\n\n- PeterNeumann AAAAAAA=\n", "signature line 1", "<key name>"),
        (b"text\n\n\xe2\x80\x94 PeterNeumann\n", "signature line 1", "<base64>"),
    ],
)
def test_malformed_notes_raise_precise_errors(raw: bytes, rule: str, words: str) -> None:
    with pytest.raises(NoteError) as exc:
        open_note(raw, [PETER])
    assert _rule(exc) == rule
    assert words in str(exc.value)
    assert isinstance(exc.value, SighubError) and isinstance(exc.value, ValueError)


def test_a_signature_from_a_known_key_that_fails_rejects_the_note() -> None:
    text = VECTORS["sign"][0]["text"]
    wrong = PETER_NOTE.replace("x08go/ZJ", "x08go/ZK")
    with pytest.raises(NoteError) as exc:
        open_note(wrong.encode(), [PETER])
    assert str(exc.value) == (
        "signed note: signature line 1: received a signature by PeterNeumann+c74f20a3 "
        "that does not verify, expected a valid signature"
    )
    assert parse_note(wrong.encode()).text == text  # well-formed, just not Peter's


def test_a_wrong_key_id_makes_the_signature_unknown_not_trusted() -> None:
    wrong_id = PETER_NOTE.replace("x08go", "x08gp")  # key ID c74f20a3 -> c74f20a9
    with pytest.raises(NoteError) as exc:
        open_note(wrong_id.encode(), [PETER])
    assert _rule(exc) == "verification"
    with pytest.raises(NoteError) as exc:
        Ed25519Verifier.from_vkey(PETER_VKEY.replace("c74f20a3", "c74f20a4"))
    assert str(exc.value) == (
        "verifier key: key ID: received c74f20a4, expected c74f20a3 (from key)"
    )


def test_the_signature_count_is_bounded_before_lines_are_parsed() -> None:
    line = PETER_NOTE.split("\n\n")[1]
    text = VECTORS["sign"][0]["text"]
    assert len(open_note(f"{text}\n{line * MAX_SIGNATURES}".encode(), [PETER]).verified) == 100
    with pytest.raises(NoteError) as exc:  # Go's TestOpen: 101 signatures
        open_note(f"{text}\n{line * 101}".encode(), [PETER])
    assert str(exc.value) == "signed note: signature limit: received 101 lines, expected <= 100"
    garbage = b"text\n\n" + b"x\n" * 5000  # refused for its count, not its first bad line
    with pytest.raises(NoteError) as exc:
        parse_note(garbage)
    assert _rule(exc) == "signature limit"


def test_an_oversized_note_is_refused_before_decoding() -> None:
    with pytest.raises(NoteError) as exc:
        parse_note(b"\xff" * (256 * 1024 + 1))
    assert str(exc.value) == ("signed note: size limit: received 262145 bytes, expected <= 262144")
    with pytest.raises(NoteError):
        open_note(PETER_NOTE.encode(), [PETER], max_bytes=100)


@pytest.mark.parametrize(
    ("text", "rule", "words"),
    [
        ("log\n020\n{root}\n", "tree size", "'020'"),
        ("log\n-1\n{root}\n", "tree size", "no leading zero"),
        ("log\n18446744073709551616\n{root}\n", "tree size", "0..18446744073709551615"),
        ("log\n+3\n{root}\n", "tree size", "'+3'"),
        ("log\n3\n{short}\n", "root hash", "31 bytes"),
        ("log\n3\n{root}", "final newline", "ending in U+000A"),
        ("log\n3\n", "layout", "2 lines"),
        ("\n3\n{root}\n", "origin", "empty"),
        ("log\n3\n{root}\n\n", "extension line", "empty"),
        ("log\n3\n{root}\nsighub-time 012\n", "sighub-time line", "'012'"),
        ("log\n3\n{root}\nsighub-time 9223372036854775808\n", "sighub-time line", "'9223"),
        ("log\n3\n{root}\nsighub-time 1\nsighub-time 2\n", "sighub-time line", "2 lines"),
        ("log\n3\nnot base64!\n", "root hash", "base64"),
    ],
)
def test_malformed_checkpoints_raise_precise_errors(text: str, rule: str, words: str) -> None:
    root = base64.b64encode(ROOT).decode()
    short = base64.b64encode(ROOT[:31]).decode()
    with pytest.raises(NoteError) as exc:
        parse_checkpoint(text.format(root=root, short=short))
    assert _rule(exc) == rule
    assert words in str(exc.value)


def test_open_checkpoint_needs_the_log_signature_and_origin() -> None:
    checkpoint = Checkpoint("hub.example/log", 3, ROOT)
    only_witness = Note(checkpoint.body, (WITNESS.cosign(checkpoint, 1),)).encode()
    with pytest.raises(NoteError) as exc:
        open_checkpoint(only_witness, LOG.verifier, [WITNESS.verifier])
    assert _rule(exc) == "log signature"
    with pytest.raises(NoteError) as exc:
        open_checkpoint(sign_checkpoint(checkpoint, LOG), LOG.verifier, origin="other.example")
    assert str(exc.value) == (
        "checkpoint: origin: received 'hub.example/log', expected 'other.example'"
    )
    with pytest.raises(NoteError) as exc:  # a log note that is not a checkpoint
        open_checkpoint(sign_note("just text\n", LOG).encode(), LOG.verifier)
    assert _rule(exc) == "layout"


def test_cosignature_timestamps_over_2_63_are_refused() -> None:
    checkpoint = Checkpoint("hub.example/log", 3, ROOT)
    with pytest.raises(NoteError) as exc:
        WITNESS.cosign(checkpoint, MAX_TIMESTAMP + 1)
    assert _rule(exc) == "time"
    good = WITNESS.cosign(checkpoint, MAX_TIMESTAMP)
    late = Signature(
        good.name, good.key_id, (MAX_TIMESTAMP + 1).to_bytes(8, "big") + good.value[8:]
    )
    assert not WITNESS.verifier.verify(checkpoint.body.encode(), late.value)
    with pytest.raises(NoteError) as exc:
        cosignature_time(late)
    assert _rule(exc) == "time"


def test_keys_are_domain_separated_by_signature_type() -> None:
    """A log key's note signature is not a cosignature and vice versa: same seed and name,
    different key IDs (type 0x01 vs 0x04), so neither verifier even looks at the other."""
    log, witness = Ed25519Signer("k", bytes(32)), Cosigner("k", bytes(32))
    assert log.public_key == witness.public_key and log.key_id != witness.key_id
    assert witness.key_id == key_id("k", 0x04, witness.public_key)
    checkpoint = Checkpoint("hub.example/log", 1, ROOT)
    with pytest.raises(NoteError) as exc:
        open_note(sign_checkpoint(checkpoint, log), [witness.verifier])
    assert _rule(exc) == "verification"


def test_ambiguous_verifiers_and_invalid_keys_are_refused() -> None:
    other = Ed25519Verifier("PeterNeumann", bytes(range(32)))
    object.__setattr__(other, "key_id", PETER.key_id)  # a collision, as a hostile list holds
    with pytest.raises(NoteError) as exc:
        open_note(PETER_NOTE.encode(), [PETER, other])
    assert _rule(exc) == "ambiguous key"
    assert open_note(PETER_NOTE.encode(), [PETER, PETER]).verified  # the same key twice is fine
    for bad in ("", "a b", "a+b", "a\u00a0b", "a\u3000b", "a\x7fb"):
        with pytest.raises(NoteError) as exc:
            Ed25519Signer(bad, bytes(32))
        assert _rule(exc) == "key name"
    with pytest.raises(NoteError) as exc:
        Note("no newline")
    assert _rule(exc) == "final newline"
    with pytest.raises(NoteError) as exc:
        Note("text\n").encode()
    assert _rule(exc) == "signatures"


def test_secrets_stay_out_of_repr_and_errors() -> None:
    signer = Ed25519Signer.from_skey(PETER_SKEY)
    secret = PETER_SKEY.split("+", 4)[4]
    assert secret not in repr(signer) and "seed" not in repr(signer)
    assert "seed" not in repr(WITNESS)
    with pytest.raises(NoteError) as exc:
        Ed25519Signer.from_skey(PETER_SKEY[:-2] + "!!")
    assert secret[:-2] not in str(exc.value)
    with pytest.raises(NoteError) as exc:
        Cosigner.from_skey(PETER_SKEY.replace("c74f20a3", "00000000"))
    assert secret not in str(exc.value)


def test_resigning_replaces_the_same_keys_signature() -> None:
    """As Go's note.Sign: re-signing with a key drops that key's old line."""
    text = VECTORS["sign"][0]["text"]
    signer = Ed25519Signer.from_skey(PETER_SKEY)
    stale = Note(text, (Signature(signer.name, signer.key_id, b"stale"),))
    assert sign_note(stale, signer).encode() == PETER_NOTE.encode()
