"""sighub: federated, signed, blinded signal sharing between trust-and-safety teams.

This module is what detection code and a platform's daemon import::

    from sighub import Member

    member = Member(Path("./platform-b"))      # a directory `sighub member enroll` wrote
    member.sync_once()
    for match in member.matcher().scan(text):
        ...

- ``Member``: publish, revoke, sync and follow a hub from a member data directory;
  ``Following`` is the handle of ``Member.follow_in_background``.
- ``Matcher`` and ``LiveMatcher`` scan texts; each ``Match`` is a span with every
  indicator (``Hit``) that fired on it, and its TLP and expiry.
- ``Sink`` is the plug-in point for a platform's rule engine; ``JsonlSink`` and
  ``MatcherSink`` are built in.
- The indicator model (``Indicator``, ``StoredIndicator``, ``Kind``, ``Form``, ``Tlp``,
  ``Publisher``), the results (``PublishResult``, ``SyncReport``) and the errors, all
  subclasses of ``SighubError``.

What two implementations must compute identically (canon/1, blinding, the pattern gate,
the STIX codec, envelopes) is in :mod:`sighub.wire`.  ``sighub.client`` (the SDK) and
``sighub.hub`` (the server) hold the implementation; their underscored modules are
private and may change in any release.

The names load on first use, so ``import sighub`` (and ``sighub --version``) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sighub.client._daemon import SyncReport
    from sighub.client._errors import (
        InputFileError,
        IntegrityAlarm,
        KeyFileError,
        ModelError,
        SighubError,
    )
    from sighub.client._local import StoredIndicator
    from sighub.client._matcher import Hit, LiveMatcher, Match, Matcher, TextTooLong
    from sighub.client._member import Following, Member
    from sighub.client._model import Form, Indicator, Kind, Publisher, Tlp
    from sighub.client._rpc import HubRejected, HubUnreachable, PublishResult
    from sighub.client._sinks import JsonlSink, MatcherSink, Sink

__all__ = [
    "Following",
    "Form",
    "Hit",
    "HubRejected",
    "HubUnreachable",
    "Indicator",
    "InputFileError",
    "IntegrityAlarm",
    "JsonlSink",
    "KeyFileError",
    "Kind",
    "LiveMatcher",
    "Match",
    "Matcher",
    "MatcherSink",
    "Member",
    "ModelError",
    "PublishResult",
    "Publisher",
    "SighubError",
    "Sink",
    "StoredIndicator",
    "SyncReport",
    "TextTooLong",
    "Tlp",
]

try:
    __version__: str = version("sighub")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.0.0+unknown"

# Where each public name lives (private modules; the names are the contract).
_HOME = {
    "SyncReport": "_daemon",
    "InputFileError": "_errors",
    "IntegrityAlarm": "_errors",
    "KeyFileError": "_errors",
    "ModelError": "_errors",
    "SighubError": "_errors",
    "StoredIndicator": "_local",
    "Hit": "_matcher",
    "LiveMatcher": "_matcher",
    "Match": "_matcher",
    "Matcher": "_matcher",
    "TextTooLong": "_matcher",
    "Following": "_member",
    "Member": "_member",
    "Form": "_model",
    "Indicator": "_model",
    "Kind": "_model",
    "Publisher": "_model",
    "Tlp": "_model",
    "HubRejected": "_rpc",
    "HubUnreachable": "_rpc",
    "PublishResult": "_rpc",
    "JsonlSink": "_sinks",
    "MatcherSink": "_sinks",
    "Sink": "_sinks",
}


def __getattr__(name: str) -> object:
    """Load a public name on first use (PEP 562) and keep it in the module."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'sighub' has no attribute {name!r}")
    value = getattr(import_module(f"sighub.client.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
