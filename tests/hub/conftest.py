"""Real hubs for integration tests: `sighub hub serve` processes on 127.0.0.1, port 0."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sighub import Form, Indicator, Kind
from sighub.client._enroll import enroll
from sighub.client._keys import MemberFiles
from sighub.client._rpc import Credential, HubClient
from sighub.client._stix import new_indicator_id
from sighub.hub._cli import main as sighub
from sighub.hub._process import start_hub
from sighub.wire import Blinder, CollabKey, build_bundle, now_ms, seal

if TYPE_CHECKING:
    from tests.hub.test_federation import Net

ROOT = Path(__file__).resolve().parents[2]


class HubProcess:
    """A hub data directory and, while running, its server process."""

    def __init__(self, data: Path, name: str = "test-hub", **settings: object) -> None:
        self.data = data
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        assert sighub(["hub", "init", "--data", str(data), "--name", name]) == 0
        config = data / "hub.toml"
        text = config.read_text()
        for key, value in settings.items():  # edit the documented defaults in place
            text, n = re.subn(rf"^{key} = \S+", f"{key} = {value}", text, flags=re.M)
            assert n == 1, key
        config.write_text(text)
        self.admin = Credential.load(data / "admin")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, insecure: bool = False, port: int = 0, stderr: Any = subprocess.PIPE) -> None:
        self.proc, address = start_hub(self.data, f"127.0.0.1:{port}", insecure, stderr)
        self.port = int(address.rsplit(":", 1)[1])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def admin_cli(self, *args: str) -> int:
        return sighub(["admin", "--cred", str(self.data / "admin"), "--hub", self.address, *args])

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data / 'hub.db'}?mode=ro", uri=True)

    def state(self) -> tuple[int, int, int]:
        """(envelopes, indicators, audit rows): what a rejected request must not change."""
        with self.db() as c:
            return tuple(
                c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                for t in ("envelopes", "indicators", "audit")
            )

    def member(
        self,
        name: str,
        tmp: Path,
        roles: str = "publisher,subscriber",
        collabs: tuple[str, ...] = ("sg-csam",),
    ) -> Member:
        enroll_file = tmp / f"{name}.enroll.json"
        assert (
            self.admin_cli("member", "add", name, "--roles", roles, "--out", str(enroll_file)) == 0
        )
        enroll(enroll_file, tmp / name, address=self.address)
        for c in collabs:
            assert self.admin_cli("collab", "join", c, name) == 0
        return Member(name, tmp / name, self)


@dataclass
class Member:
    name: str
    data: Path
    hub: HubProcess
    _client: HubClient | None = field(default=None, repr=False)

    @property
    def files(self) -> MemberFiles:
        return MemberFiles(self.data)

    def client(self) -> HubClient:
        if self._client is None:
            cred = Credential.load(self.data)
            self._client = HubClient.connect(
                Credential(
                    cred.folder,
                    self.hub.address,
                    cred.member,
                    cred.bearer_token,
                    cred.hub_public_key,
                )
            )
        return self._client

    def key(self, collab: str = "sg-csam") -> CollabKey:
        """The current key: the hub's for a collaboration without stewards, else the
        latest this member unwrapped (synced into local.db)."""
        keys = [
            (k.epoch, k.secret) for k in self.client().collab_keys() if k.collaboration == collab
        ]
        if not keys:
            with sqlite3.connect(self.data / "local.db") as c:
                keys = c.execute(
                    "SELECT epoch, secret FROM collab_keys WHERE collab=?", (collab,)
                ).fetchall()
        epoch, secret = max(keys)
        return CollabKey(collab, epoch, secret)

    def indicators(
        self, n: int = 3, collab: str = "sg-csam", days: int = 30, **over: Any
    ) -> list[Indicator]:
        ident = self.files.identity()
        blinder = Blinder(self.key(collab))
        now = now_ms()
        out = []
        for i in range(n):
            fields: dict[str, Any] = {
                "id": new_indicator_id(),
                "kind": Kind.KEYWORD,
                "form": Form.BLINDED,
                "value": blinder.value(Kind.KEYWORD, f"s3ll3r {i} {time.time_ns()}"),
                "collaboration": collab,
                "publisher": ident.publisher,
                "valid_from": now,
                "valid_until": now + timedelta(days=days),
                "created": now,
                "modified": now,
                "key_epoch": blinder.key.epoch,
            }
            fields.update(over)
            out.append(Indicator(**fields))
        return out

    def envelope(self, indicators: list[Indicator]) -> bytes:
        return seal(build_bundle(indicators[0].publisher, indicators), self.files.signing_key())

    def publish(self, indicators: list[Indicator], collab: str = "sg-csam") -> Any:
        return self.client().publish(collab, self.envelope(indicators))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@contextmanager
def running_world(
    tmp: Path, publishers: tuple[str, ...], **settings: object
) -> Iterator[dict[str, Any]]:
    """A running hub (``settings`` edit hub.toml) with collaborations sg-csam and other, and
    members: each of ``publishers`` (publisher+subscriber), sub (subscriber only), outsider
    (publisher+subscriber, in 'other' only, so the others see its leaves as hashes)."""
    hub = HubProcess(tmp / "hub", **settings)
    hub.start()
    try:
        assert hub.admin_cli("collab", "add", "sg-csam") == 0
        assert hub.admin_cli("collab", "add", "other") == 0
        members = {name: hub.member(name, tmp) for name in publishers}
        members["sub"] = hub.member("sub", tmp, roles="subscriber")
        members["outsider"] = hub.member("outsider", tmp, collabs=("other",))
        yield {"hub": hub, "tmp": tmp, **members}
        for m in members.values():
            m.close()
    finally:
        if hub.proc is not None:
            hub.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``running_world`` with publishers pub and pub2 and small publish limits."""
    settings = {"max_indicators": 50, "max_envelope_bytes": 200000}
    with running_world(
        tmp_path_factory.mktemp("world"), ("pub", "pub2"), publishes_per_minute=6000,
        burst=1000, **settings,
    ) as w:  # fmt: skip
        yield w


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    """Hubs by name, for the federation tests (``test_federation.Net``), all stopped after."""
    from tests.hub.test_federation import Net  # imported here: that module imports this one

    n = Net(tmp_path)
    try:
        yield n
    finally:
        n.close()
