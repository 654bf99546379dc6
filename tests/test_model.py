from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import timedelta, timezone

import pytest

from sighub import Form, Kind, ModelError, Publisher
from tests.conftest import NOW, make_indicator


def test_valid_indicator_is_frozen() -> None:
    ind = make_indicator()
    with pytest.raises(FrozenInstanceError):
        ind.confidence = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("id", "indicator--not-a-uuid", "UUID"),
        ("id", "identity--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "indicator--"),
        ("kind", "hashtags", "one of"),
        ("form", "plain", "one of"),
        ("value", "ABC", "32 lowercase hex"),
        ("value", "0" * 31, "32 lowercase hex"),
        ("collaboration", "SG CSAM", "slug"),
        ("confidence", 101, "0-100"),
        ("confidence", True, "0-100"),
        ("key_epoch", -1, ">= 0"),
        ("key_epoch", None, ">= 0"),
        ("scheme", "sha256", "blake2b-128"),
        ("canon_version", "canon/9", "one of ('canon/1', 'canon/2')"),
        ("valid_until", NOW, "later than valid_from"),
        ("valid_from", NOW.replace(tzinfo=None), "UTC datetime"),
        ("created", NOW.replace(microsecond=1), "millisecond"),
        ("created", NOW.astimezone(timezone(timedelta(hours=2))), "UTC"),
        ("modified", NOW - timedelta(seconds=1), "not earlier than created"),
        ("labels", ["x"], "tuple"),
        ("labels", ("Bad Label",), "lowercase label"),
        ("description", "x" * 1025, "1024"),
        ("tlp", "amber", "one of"),
        ("revoked", "yes", "bool"),
        ("publisher", "platform-a", "Publisher"),
    ],
)
def test_each_field_is_validated(field: str, value: object, expected: str) -> None:
    with pytest.raises(ModelError) as info:
        make_indicator(**{field: value})
    assert info.value.field == field
    assert expected in str(info.value)
    received = value[0] if isinstance(value, tuple) else value
    assert repr(received)[:20] in str(info.value)  # names what was received


def test_pattern_form_rules() -> None:
    ind = make_indicator(
        kind=Kind.PAYMENT, form=Form.PATTERN, value=r"[a-z0-9]{4}-[a-z0-9]{4}", key_epoch=None,
        scheme=None,
    )  # fmt: skip
    assert ind.value == "[a-z0-9]{4}-[a-z0-9]{4}"
    with pytest.raises(ModelError, match="gated pattern"):
        make_indicator(form=Form.PATTERN, value="(a+)+", key_epoch=None, scheme=None)
    with pytest.raises(ModelError, match="scheme"):
        make_indicator(form=Form.PATTERN, value="abc", key_epoch=0)


def test_publisher_validation() -> None:
    with pytest.raises(ModelError, match=r"Publisher\.id"):
        Publisher("indicator--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "x")
    with pytest.raises(ModelError, match=r"Publisher\.name"):
        Publisher("identity--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "")


def test_public_api_is_explicit() -> None:
    from sighub import client

    for name in client.__all__:
        assert hasattr(client, name), name
    public = {n for n in dir(client) if not n.startswith("_")}
    assert public - set(client.__all__) <= {"annotations"}
