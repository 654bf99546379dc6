"""A lying peer: a real hub's relay follows a peer that turns into a liar (``lyingpeer``:
its data, TLS pair and log key, on its address) and serves a log that withholds an
envelope, injects one signed by a key its directory never held, replays one already
delivered, alters an envelope's bytes, or re-attributes one (claims another origin).
The receiving hub's relay refuses each (a log alarm stops it, shown by ``admin peer
status``; or a counted ``refused``), and the receiving hub's log holds nothing of it, while
an honest envelope served after a refused one still crosses."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub import Indicator
from sighub.client._hops import HopRecord, decode_hops, encode_hops, sign_hop
from sighub.client._stix import format_time
from sighub.wire import build_bundle, seal
from tests.hub.conftest import HubProcess, Member
from tests.hub.lyingpeer import LyingPeer, PeerLog
from tests.hub.test_federation import Net, counts, envelopes, published, wait_for

WAIT = 45.0


@dataclass
class World:
    """industry (about to lie) followed by regional's relay, which took ``sent`` honestly;
    ``spare`` indicators of industry's publisher, not published, for the liar to use."""

    net: Net
    industry: HubProcess
    regional: HubProcess
    pub: Member
    sent: list[bytes]
    spare: list[list[Indicator]]
    log: PeerLog | None = None
    _sealed: dict[int, bytes] = field(default_factory=dict)

    def sealed(self, i: int) -> bytes:
        """Spare ``i`` sealed by the publisher's own key, as it would publish it (once: a
        bundle's id is random)."""
        if i not in self._sealed:
            bundle = build_bundle(self.spare[i][0].publisher, self.spare[i])
            self._sealed[i] = seal(bundle, self.pub.files.signing_key())
        return self._sealed[i]

    @property
    def relay_data(self) -> Path:
        return self.regional.data / "peers" / "industry"


def relay_db(w: World) -> sqlite3.Connection:
    """The relay's own database, read-only."""
    return sqlite3.connect(f"file:{w.relay_data / 'local.db'}?mode=ro", uri=True)


def relay_cursor(w: World) -> int:
    with relay_db(w) as c:
        row = c.execute("SELECT value FROM meta WHERE key='cursor'").fetchone()
    return int(row[0]) if row else 0


def head(hub: HubProcess) -> int:
    with hub.db() as c:
        return int(c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0])


def world(net: Net, upstream: bool = False) -> World:
    """The honest start (with ``upstream``: national -> industry first, and an envelope
    of national's publisher relayed by industry, then regional); then industry stops and
    its log is read for the liar."""
    sent = []
    if upstream:
        net.hub("national")
    net.hub("industry")
    net.hub("regional")
    if upstream:
        net.follow("industry", "national")
        sent += published(net.member("national", "pub-n"), 1)
        wait_for("industry holds 1", lambda: len(envelopes(net.hubs["industry"])) == 1)
    net.follow("regional", "industry")
    pub = net.member("industry", "pub-a")
    sent += published(pub, 2)
    spare = [pub.indicators(1) for _ in range(3)]  # the collaboration key: asked while up
    w = World(net, net.hubs["industry"], net.hubs["regional"], pub, sent, spare)
    wait_for(f"regional holds {len(sent)}", lambda: len(envelopes(w.regional)) == len(sent))
    wait_for("the relay caught up", lambda: relay_cursor(w) == head(w.industry))
    w.industry.stop()
    w.log = PeerLog.of(w.industry)
    return w


def ids(raws: list[bytes]) -> set[str]:
    return {hashlib.sha256(r).hexdigest() for r in raws}


def alarms(w: World) -> list[tuple[str, str]]:
    with relay_db(w) as c:
        return [(str(k), str(m)) for k, m in c.execute("SELECT kind, message FROM log_alarms")]


def refused(w: World) -> dict[str, str]:
    with relay_db(w) as c:
        return {str(e): str(r) for e, r in c.execute("SELECT envelope_id, reason FROM refused")}


def relay_status(w: World, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The relay's part of regional's ``admin peer status industry``."""
    capsys.readouterr()
    assert w.regional.admin_cli("peer", "status", "industry") == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)["relay"]
    return shown


def relay_stopped(w: World, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Wait for the relay to stop with an alarm: its status then."""
    wait_for("the relay stopped", lambda: relay_status(w, capsys)["state"] == "alarm", WAIT)
    return relay_status(w, capsys)


@dataclass(frozen=True)
class Lie:
    """What the liar serves after the honest log, and what must come of it."""

    bad: list[bytes]  # envelopes regional's log must not hold
    good: list[bytes]  # honest envelopes served after the lie that must cross
    alarm: str  # the relay stops with a log alarm whose message holds this; "" if counted
    reason: str = ""  # for a counted refusal: what the relay's refused table says
    outcome: str = "refused"  # how the relay counts the lie when no alarm stops it
    # the refused envelopes' ids, where regional holds the same bytes from before (a lie
    # about an envelope it took honestly): the refused table must name them
    bad_ids: set[str] = field(default_factory=set)


def withheld(w: World, liar: LyingPeer) -> Lie:
    """An envelope left out of the batch (its sequence a gap), the next one served."""
    assert w.log is not None
    dropped, after = w.sealed(0), w.sealed(1)
    w.log.add(dropped)
    liar.skip = frozenset({w.log.size})
    w.log.add(after)
    return Lie([dropped, after], [], "sequence")


def unknown_key(w: World, liar: LyingPeer) -> Lie:
    """An envelope in the publisher's name signed by a key no leaf of the log enrolled."""
    assert w.log is not None
    forged = seal(build_bundle(w.spare[0][0].publisher, w.spare[0]), Ed25519PrivateKey.generate())
    honest = w.sealed(1)
    w.log.add(forged)
    w.log.add(honest)
    return Lie([forged], [honest], "", "key")


def replayed(w: World, liar: LyingPeer) -> Lie:
    """An envelope already delivered, logged again at a later sequence (its next number)."""
    assert w.log is not None
    honest = w.sealed(1)
    w.log.add(w.sent[0])
    w.log.add(honest)
    # nothing new is stored (the envelope id), and the log that holds it twice is evidence
    return Lie([], [honest], "", "holds it twice", "replayed", ids([w.sent[0]]))


def _altered(w: World) -> bytes:
    """Spare 0's envelope with spare 1's bundle as its payload: the signature over the first."""
    good = json.loads(w.sealed(0))
    other = json.loads(w.sealed(1))
    return w.sealed(0).replace(good["payload"].encode(), other["payload"].encode())


def altered_in_transit(w: World, liar: LyingPeer) -> Lie:
    """The log commits to an envelope; other bytes are served for it."""
    assert w.log is not None
    entry = w.log.add(w.sealed(0))
    entry.envelope = _altered(w)
    return Lie([_altered(w), w.sealed(0)], [], "altered leaves")


def altered_and_logged(w: World, liar: LyingPeer) -> Lie:
    """Altered bytes that the log itself commits to: only the signature can tell."""
    assert w.log is not None
    bad, honest = _altered(w), w.sealed(2)
    w.log.add(bad)
    w.log.add(honest)
    return Lie([bad], [honest], "", "signature")


def _hop(w: World, raw: bytes, source: str) -> bytes:
    """A hop record of industry (the liar holds its log key) saying it took ``raw`` from
    ``source``, with industry's own checkpoint as the source's."""
    assert w.log is not None
    received = format_time(datetime.now(UTC))
    hop = sign_hop(w.log.signer.sign, w.log.origin, raw, (), source, 1, w.log.checkpoint(),
                   received)  # fmt: skip
    return encode_hops([hop])


def other_origin(w: World, liar: LyingPeer) -> Lie:
    """Industry's own publisher's envelope, claimed to come from another hub."""
    assert w.log is not None
    raw, honest = w.sealed(0), w.sealed(1)
    w.log.add(raw, _hop(w, raw, "sighub/elsewhere"))
    w.log.add(honest)
    return Lie([raw], [honest], "", "sighub/elsewhere")


def _relayed(w: World) -> tuple[bytes, tuple[HopRecord, ...]]:
    """National's envelope as industry logged it, with its genuine hop record."""
    assert w.log is not None
    entry = next(e for e in w.log.entries if e.hops)
    assert entry.envelope is not None
    return entry.envelope, decode_hops(entry.hops)


def edited_hop(w: World, liar: LyingPeer) -> Lie:
    """National's envelope logged again with its hop record edited after industry signed
    it (the time industry received it)."""
    assert w.log is not None
    raw, hops = _relayed(w)
    edited = replace(hops[0], received="2020-01-01T00:00:00.000Z")
    w.log.add(raw, encode_hops([edited]))
    honest = w.sealed(0)
    w.log.add(honest)
    return Lie([], [honest], "", "signature", bad_ids=ids([raw]))


def origin_claimed(w: World, liar: LyingPeer) -> Lie:
    """National's envelope logged again without its hop record: industry claims to be
    its origin, so national's publisher as one of its own members."""
    assert w.log is not None
    raw, _ = _relayed(w)
    w.log.add(raw)
    honest = w.sealed(0)
    w.log.add(honest)
    return Lie([], [honest], "", "key", bad_ids=ids([raw]))


LIES: dict[str, Callable[[World, LyingPeer], Lie]] = {
    "withheld": withheld,
    "unknown-key": unknown_key,
    "replayed": replayed,
    "altered-in-transit": altered_in_transit,
    "altered-and-logged": altered_and_logged,
    "other-origin": other_origin,
    "edited-hop": edited_hop,  # these two: national -> industry -> regional
    "origin-claimed": origin_claimed,
}
UPSTREAM = frozenset({"edited-hop", "origin-claimed"})


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_peer_is_refused(net: Net, lie: str, capsys: pytest.CaptureFixture[str]) -> None:
    w = world(net, upstream=lie in UPSTREAM)
    assert w.log is not None
    honest_size = w.log.size

    with LyingPeer(w.industry, w.log) as liar:
        expect = LIES[lie](w, liar)
        assert w.log.size > honest_size
        wait_for("the relay reached the liar", lambda: bool(liar.syncs), WAIT)
        if expect.alarm:
            shown = relay_stopped(w, capsys)
            assert expect.alarm in shown["error"], shown
            assert any(expect.alarm in m for _, m in alarms(w)), alarms(w)
        else:
            arrived = lambda: ids(expect.good) <= {r[1] for r in envelopes(w.regional)}  # noqa: E731
            wait_for("the honest envelope after the lie crossed", arrived, WAIT)
            assert alarms(w) == []
            got = counts(w.regional, "industry")
            assert got == {"relayed": len(w.sent) + len(expect.good), expect.outcome: 1}, got
            # the relay's own refused table commits after the hub's counts: waited for
            bad = ids(expect.bad) | expect.bad_ids
            noted = lambda: all(expect.reason in refused(w).get(i, "") for i in bad)  # noqa: E731
            wait_for("the refusal in the relay's refused table", noted, WAIT)
    rows = envelopes(w.regional)
    held = {r[1] for r in rows}
    assert not ids(expect.bad) & held, f"{lie}: regional holds what it must refuse"
    assert len(rows) == len(w.sent) + len(expect.good)  # nothing else, nothing twice
    assert [r[3] for r in rows] == w.sent + expect.good


def test_a_bad_inclusion_path_is_an_alarm_the_operator_acknowledges_by_resuming(
    net: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    """The liar's log is honest but the inclusion path it gives for a new envelope does not
    verify in its own checkpoint: the relay keeps the evidence and stops (it does not retry
    into the same lie); suspending and resuming the peering acknowledges the alarm, and
    once the peer serves true paths the envelope crosses, once."""
    w = world(net)
    assert w.log is not None

    with LyingPeer(w.industry, w.log) as liar:
        liar.bad_paths = True
        raw = w.sealed(0)
        w.log.add(raw)
        shown = relay_stopped(w, capsys)
        assert "inclusion path" in shown["error"] and "peer resume" in shown["error"], shown
        assert any("inclusion path" in m for _, m in alarms(w)), alarms(w)
        assert len(envelopes(w.regional)) == len(w.sent)  # nothing of the batch stored
        liar.bad_paths = False
        assert w.regional.admin_cli("peer", "suspend", "industry") == 0
        assert w.regional.admin_cli("peer", "resume", "industry") == 0
        wait_for("crossed", lambda: ids([raw]) <= {r[1] for r in envelopes(w.regional)}, WAIT)
    assert [r[3] for r in envelopes(w.regional)] == [*w.sent, raw]
    assert alarms(w)  # the evidence stays
