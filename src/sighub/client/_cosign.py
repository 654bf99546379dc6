"""A witness daemon's cosignatures: each checkpoint the daemon verified (consistent with
everything it stored) and applied is co-signed (cosignature/v1, timed now) and sent to the
hub with ``AddCosignature``, from a thread of its own, so that a slow or refusing hub
never holds up or fails the sync.

At most one cosignature a second (``INTERVAL``): checkpoints offered meanwhile replace one
another, and the newest is the one sent.  A refusal is logged at WARNING and the next
checkpoint is tried as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

from sighub.client._checkpoint import Cosigner, parse_checkpoint
from sighub.client._errors import SighubError
from sighub.client._note import parse_note
from sighub.client._rpc import HubClient, HubRejected, HubUnreachable

__all__ = ["INTERVAL", "CosignSender"]

log = logging.getLogger("sighub.sync")
INTERVAL: Final = 1.0  # seconds between two cosignatures sent


class CosignSender:
    """Sends ``cosigner``'s cosignatures of offered checkpoint notes over a connection
    of its own (``connect``), timed by ``clock``.  ``offer`` never blocks; ``flush``
    waits (bounded) until the newest offer is sent; ``close`` stops the thread."""

    def __init__(
        self,
        cosigner: Cosigner,
        connect: Callable[[], HubClient],
        clock: Callable[[], datetime],
        interval: float = INTERVAL,
    ) -> None:
        self.cosigner, self._connect, self._clock = cosigner, connect, clock
        self._interval = interval
        self._vkey = cosigner.verifier.vkey
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._newest: bytes | None = None
        self._sent: bytes | None = None  # the last note taken to send (accepted or not)
        self._last = float("-inf")  # time.monotonic() of the last send
        self._client: HubClient | None = None
        self._thread: threading.Thread | None = None
        self.accepted = 0  # cosignatures the hub kept, for tests and logs

    def offer(self, note: bytes) -> None:
        """Co-sign ``note`` (a checkpoint the daemon verified) soon, unless it is the
        one sent last or a newer offer replaces it first."""
        with self._lock:
            if self._stop.is_set() or note in (self._sent, self._newest):
                return
            self._newest = note
            self._idle.clear()
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sighub-cosign", daemon=True)
                self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the newest offer to be sent; whether it was."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop sending (an offer not sent yet is dropped) and close the connection."""
        with self._lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        client = self._client
        if client is not None:
            client.close()  # ends a call in flight
        if thread is not None:
            thread.join(timeout=5)
        self._drop_client()  # one the thread opened meanwhile

    def _run(self) -> None:
        while True:
            self._wake.wait()
            pause = self._last + self._interval - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                return
            with self._lock:
                if self._stop.is_set():
                    return
                self._wake.clear()
                note, self._newest = self._newest, None  # the newest offer, after the pause
                if note is None:
                    self._idle.set()
                    continue
                self._sent = note
            self._send(note)
            self._last = time.monotonic()
            with self._lock:
                if self._newest is None:
                    self._idle.set()

    def _send(self, note: bytes) -> None:
        try:
            checkpoint = parse_checkpoint(parse_note(note).text)
            line = self.cosigner.cosign(checkpoint, int(self._clock().timestamp())).line
            if self._client is None:
                self._client = self._connect()
            size = self._client.add_cosignature(note, line.encode(), self._vkey)
        except HubUnreachable as exc:
            self._drop_client()
            log.warning("cosignature not sent (hub unreachable): %s", exc.hub_message)
        except HubRejected as exc:
            log.warning(
                "cosignature of checkpoint size %s refused by the hub (%s): %s",
                _size(note),
                exc.code,
                exc.hub_message,
            )
        except (SighubError, ValueError) as exc:  # e.g. the connection closed by close()
            self._drop_client()
            log.warning("cosignature not sent: %s", exc)
        else:
            self.accepted += 1
            log.debug("cosigned checkpoint of size %d as %s", size, self.cosigner.name)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _size(note: bytes) -> str:
    try:
        return str(parse_checkpoint(parse_note(note).text).size)
    except SighubError:
        return "?"
