from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings

from sighub import Form, Indicator, Kind, Publisher, Tlp
from sighub.client._keys import identity_for
from sighub.wire import Blinder, CollabKey

# SIGHUB_HYPOTHESIS=thorough runs every property with many more examples.
settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("SIGHUB_HYPOTHESIS", "ci"))

SIGHUB = [sys.executable, "-m", "sighub.hub._cli"]  # the `sighub` command, from this checkout
NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
TEST_KEY = CollabKey("sg-csam", 0, bytes(range(32)))


def make_publisher(name: str = "platform-a") -> Publisher:
    return Publisher(identity_for(name), name)  # a member's id, as the hub derives it


def make_indicator(**over: object) -> Indicator:
    fields: dict[str, object] = {
        "id": f"indicator--{uuid.uuid4()}",
        "kind": Kind.KEYWORD,
        "form": Form.BLINDED,
        "value": Blinder(TEST_KEY).value(Kind.KEYWORD, "s3ll3r"),
        "collaboration": "sg-csam",
        "publisher": make_publisher(),
        "valid_from": NOW,
        "valid_until": NOW + timedelta(days=30),
        "created": NOW,
        "modified": NOW,
        "key_epoch": 0,
        "confidence": 80,
        "labels": ("seller-term",),
        "description": "synthetic",
        "tlp": Tlp.AMBER,
    }
    fields.update(over)
    return Indicator(**fields)  # type: ignore[arg-type]


@pytest.fixture
def publisher() -> Publisher:
    return make_publisher()
