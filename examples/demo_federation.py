"""Federation on one machine, with synthetic data (``make demo-federation``):

three hubs on loopback (mTLS), an industry hub, a regional hub and a hotline's hub.  The
regional hub and the industry hub follow each other; the regional hub pushes to the
hotline's hub (as if the hotline could not reach it: the regional hub dials out and keeps a
tunnel open, through which the hotline's relay pulls) and follows it.  Platform A, on the
industry hub, stewards sg-csam's key: it wraps each epoch to platform C on the hotline's hub,
two hops away (its join reached the industry hub as a copy of a copy; the wrap goes back the
same way).  A publishes; C verifies every envelope itself (against the industry hub's
directory, as the relays copied it) and matches with provenance, a blinded keyword too: one
key on every hub.  A ``red`` indicator stays home, and a revocation crosses both hops.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sighub import Member  # noqa: E402
from sighub.client._enroll import enroll  # noqa: E402
from sighub.hub._cli import main as sighub  # noqa: E402
from sighub.hub._process import start_hub  # noqa: E402

HUBS = ("industry-hub", "regional-hub", "hotline-hub")
# Patterns need no key; the blinded keyword needs sg-csam's key where it is matched: the
# steward's wraps carry it to platform C two hops away (docs/federation.md).
HEADER = "kind,value,form,ttl,confidence,description,tlp,labels\n"
AMBER = (
    "payment,[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4},pattern,30d,40,"
    "gift-card code format,amber,gift-card-format\n"
    'url,"t\\.me/\\+[a-z0-9_]{8,32}",pattern,30d,50,private group invite format,amber,'
    "invite-link\n"
    "keyword,s3ller,blinded,30d,60,seller spelling variant,amber,seller-term\n"
)
RED = (
    'payment,"\\$examplecash[0-9]{2}",pattern,30d,90,cashtag format seen in menus,red,'
    "payment-handle\n"
)
POSTS = {
    "p4": "pay $ExampleCash01, codes like ab12-cd34-ef56-gh78",
    "p5": "join t.me/+abcd_efgh12 for the menu",
    "p6": "ask the s3ller about chapter 14",
}


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(cmd: list[str]) -> str:
    """A sighub command; its standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = sighub(cmd)
    if code != 0:
        raise SystemExit(f"demo failed at: sighub {' '.join(cmd)}")
    return out.getvalue()


def wait_for(what: str, ok: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo failed: not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def envelopes(root: Path, hub: str) -> int:
    with sqlite3.connect(f"file:{root / hub / 'hub.db'}?mode=ro", uri=True) as c:
        return int(c.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0])


class Net:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.address: dict[str, str] = {}

    def start(self) -> None:
        for name in HUBS:
            run(["hub", "init", "--data", str(self.root / name), "--name", name])
            self.procs[name], self.address[name] = start_hub(
                self.root / name, stderr=subprocess.DEVNULL
            )
            print(f"  {name} listening on {self.address[name]} (mTLS), log sighub/{name}")

    def admin(self, hub: str, *args: str) -> str:
        cred = str(self.root / hub / "admin")
        return run(["admin", "--cred", cred, "--hub", self.address[hub], *args])

    def follow(self, follower: str, followed: str) -> None:
        """``followed``'s admin enrolls ``follower`` as a peer in sg-csam; ``follower``'s
        admin signs the peering (amber and below cross, at most 3 hops)."""
        member = f"hub-{follower.removesuffix('-hub')}"
        path = self.root / f"{member}.enroll.json"
        self.admin(followed, "member", "add", member, "--roles", "peer", "--out", str(path))
        self.admin(followed, "collab", "join", "sg-csam", member)
        policy = ["--map", "sg-csam=sg-csam", "--max-hops", "3", "--tlp-ceiling", "amber"]
        self.admin(follower, "peer", "add", followed, "--enrollment", str(path), *policy)
        print(f"  {follower} follows {followed}: sg-csam crosses, TLP amber at most, 3 hops")

    def push(self, pusher: str, receiver: str) -> None:
        """``receiver`` cannot dial ``pusher``: its admin enrolls the pusher as member
        ``pusher`` in sg-csam (the tunnel's credential, and the pusher's relay: direction
        both, the pusher also follows the receiver); the pusher's admin adds the peering (it
        enrolls and dials out) and enrolls the receiver's relay as a peer in sg-csam; the
        receiver's admin adds a dial-in peering of the same name."""
        dialer = self.root / f"{pusher}.dialer.json"
        self.admin(receiver, "member", "add", pusher, "--roles", "peer", "--out", str(dialer))
        self.admin(receiver, "collab", "join", "sg-csam", pusher)
        policy = ["--map", "sg-csam=sg-csam", "--max-hops", "3", "--tlp-ceiling", "amber"]
        self.admin(pusher, "peer", "add", receiver, "--enrollment", str(dialer), *policy,
                   "--direction", "both")  # fmt: skip
        member = f"hub-{receiver.removesuffix('-hub')}"
        relay = self.root / f"{member}.enroll.json"
        self.admin(pusher, "member", "add", member, "--roles", "peer", "--out", str(relay))
        self.admin(pusher, "collab", "join", "sg-csam", member)
        self.admin(receiver, "peer", "add", pusher, "--enrollment", str(relay), *policy,
                   "--dial-in")  # fmt: skip
        print(f"  {pusher} pushes to {receiver}, which cannot dial it: {pusher} dials out"
              f" and {receiver}'s relay pulls through that tunnel; {pusher} also follows"
              f" {receiver} (sg-csam, TLP amber at most, 3 hops)")  # fmt: skip

    def collabs(self, steward: str) -> None:
        """sg-csam on each hub: on the industry hub its key epochs are made by ``steward``,
        on the others they come from that steward (``--keys-from-peer``): one key."""
        path = self.root / f"{steward}.enroll.json"
        self.admin(HUBS[0], "member", "add", steward, "--roles", "publisher,subscriber",
                   "--out", str(path))  # fmt: skip
        enroll(path, self.root / steward, address=self.address[HUBS[0]])
        self.admin(HUBS[0], "collab", "add", "sg-csam", "--steward", steward)
        print(f"  {HUBS[0]}: sg-csam, its key made by its steward {steward} (enrolled here)")
        for hub in HUBS[1:]:
            self.admin(hub, "collab", "add", "sg-csam", "--keys-from-peer")
            print(f"  {hub}: sg-csam, its key from the steward on {HUBS[0]}")

    def platform(self, hub: str, name: str, roles: str) -> Member:
        path = self.root / f"{name}.enroll.json"
        self.admin(hub, "member", "add", name, "--roles", roles, "--out", str(path))
        # enrolled first: its keys are then logged before its join, which a steward two
        # hops away waits for
        enroll(path, self.root / name, address=self.address[hub])
        self.admin(hub, "collab", "join", "sg-csam", name)
        print(f"  {name} enrolled at {hub} ({roles})")
        return Member(self.root / name, address=self.address[hub])

    def relay(self, hub: str, peer: str) -> dict[str, Any]:
        status = json.loads(self.admin(hub, "peer", "status", peer))
        return status["relay"] or {}

    def stop(self) -> None:
        for name, proc in self.procs.items():
            proc.send_signal(signal.SIGTERM)
            print(f"  {name} exited with {proc.wait(timeout=30)}")


def _caught_up(relay: dict[str, Any]) -> bool:
    return bool(relay) and relay["cursor"] > 0 and relay["lag"] == 0


def _leaves(root: Path, hub: str) -> list[dict[str, Any]]:
    """The copies a hub's log holds of other hubs' leaves, opened."""
    with sqlite3.connect(f"file:{root / hub / 'hub.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT leaf FROM leaves WHERE type='peer.leaf'").fetchall()
    return [json.loads(base64.b64decode(json.loads(bytes(r[0]))["leaf"])) for r in rows]


def copied_join(root: Path, member: str) -> bool:
    return any(x["type"] == "collab.join" and x["member"] == member
               for x in _leaves(root, HUBS[0]))  # fmt: skip


def copied(root: Path, hub: str, kind: str) -> bool:
    return any(x["type"] == kind for x in _leaves(root, hub))


def far_wraps(root: Path) -> list[str]:
    with sqlite3.connect(f"file:{root / HUBS[0] / 'hub.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT recipient FROM epoch_wraps WHERE recipient LIKE '%@%'")
        return [str(r[0]) for r in rows.fetchall()]


def steward_wraps(a: Member, root: Path) -> None:
    """Platform A, sg-csam's steward, wraps the key to platform C two hops away, and the
    relays carry the wrap to the hotline's hub."""
    wait_for("platform C's join copied to the industry hub (two hops)",
             lambda: copied_join(root, "platform-c"), timeout=30)  # fmt: skip

    # Its duties at each sync: a new epoch, wrapped to every member it knows, and the
    # current epoch to those who lack it. It knows platform C once its own sync of the
    # industry hub's log holds C's copied join and encryption key: synced until it wrapped.
    def wrapped_to_c() -> bool:
        a.sync_once()
        return any(w.startswith("platform-c@") for w in far_wraps(root))

    wait_for("the steward's wrap to platform C", wrapped_to_c, timeout=30)
    print(f"  epoch 0 wrapped to {', '.join(far_wraps(root))} and to platform-a;"
          " the industry hub logs each far wrap, the relays copy it on")  # fmt: skip
    wait_for("the wrap at the hotline's hub",
             lambda: copied(root, "hotline-hub", "collab.wrap"), timeout=30)  # fmt: skip


def scan(c: Member) -> dict[str, list[str]]:
    matcher = c.matcher()
    out: dict[str, list[str]] = {}
    for pid, text in POSTS.items():
        hits = matcher.scan(text)
        out[pid] = [m.indicator for m in hits]
        print(f"  {pid}: {text!r}")
        for m in hits:
            origin, hops = c.provenance(m.indicator)
            print(f"      {m.kind.value:8} {m.text!r:24} {m.description} (TLP {m.tlp.value})")
            print(
                f"               publisher {m.publisher}, origin {origin}, via {' > '.join(hops)}"
            )
        if not hits:
            print("      no shared indicator fires")
    return out


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sighub-federation-") as tmp:
        root = Path(tmp)
        net = Net(root)
        try:
            step("operators: three hubs on loopback")
            net.start()
            net.collabs("platform-a")
            step("operators: peerings (each hub's admin signs its own)")
            net.follow("regional-hub", "industry-hub")
            net.follow("industry-hub", "regional-hub")
            net.push("regional-hub", "hotline-hub")
            step("platforms: A at the industry hub publishes, C at the hotline's hub matches")
            a = Member(root / "platform-a", address=net.address["industry-hub"])
            c = net.platform("hotline-hub", "platform-c", "subscriber")

            step("platform A, sg-csam's steward: wrap its key to the members of every hub")
            steward_wraps(a, root)

            step("platform A: publish two amber patterns and a blinded keyword, then a red pattern")
            for name, rows in (("amber", AMBER), ("red", RED)):
                csv = root / f"{name}.csv"
                csv.write_text(HEADER + rows)
                result = a.publish_file(csv, "sg-csam")
                print(f"  industry-hub accepted {result.indicators} {name} indicator(s) at"
                      f" sequence {result.sequence}")  # fmt: skip
            for hub, peer in (("regional-hub", "industry-hub"), ("hotline-hub", "regional-hub")):
                wait_for(f"{hub} caught up", lambda h=hub, p=peer: _caught_up(net.relay(h, p)))  # type: ignore[misc]
                counts = net.relay(hub, peer)["counts"]
                shown = {
                    k: v for k, v in sorted(counts.items()) if "copy" not in k and k != "copied"
                }
                print(f"  {hub}'s relay of {peer}: caught up; envelopes {shown}")

            step("platform C: sync, verifying each envelope against the industry hub's directory")
            report = c.sync_once()
            print(f"  applied {report.applied} indicators from {report.envelopes} envelopes, "
                  f"refused {len(report.refused)}")  # fmt: skip
            assert report.applied == 3 and not report.refused
            before = scan(c)
            assert len(before["p4"]) == 1 and len(before["p5"]) == 1  # the red cashtag: no
            assert len(before["p6"]) == 1  # blinded: one key, two hops from its steward
            print("\n  the red cashtag pattern stayed at the industry hub: regional-hub counted it"
                  f" as {net.relay('regional-hub', 'industry-hub')['counts'].get('tlp-ceiling')}"
                  " over its TLP ceiling")  # fmt: skip

            step("platform A: revoke the gift-card pattern; the revocation crosses both hops")
            a.sync_once()
            a.revoke(before["p4"])
            wait_for("the revocation at hotline-hub", lambda: envelopes(root, "hotline-hub") >= 2)
            c.sync_once()
            after = scan(c)
            assert not after["p4"] and after["p5"] == before["p5"]
            print("\n  p4 no longer fires at the hotline's hub")
        finally:
            step("shutting down")
            net.stop()
    print(f"\ndone in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
