"""Holding the controller lease: renew every `renew_s`, act only while the last renewal is
younger than the TTL (less one renewal period, so a holder stops acting before anyone else
may take over)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from runtime.store import Lease, LeaseStore

log = logging.getLogger(__name__)


def holder_identity() -> str:
    """host:pid:random: unique per server process, readable in /healthz."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaseKeeper:
    """Keeps trying to take or renew the lease in a thread. `token()` is the fencing token while
    this process may act as the controller, else None."""

    def __init__(self, leases: LeaseStore, holder: str | None = None, ttl_s: float = 8.0, renew_s: float = 2.0):
        if not 0 < renew_s < ttl_s / 2:
            raise ValueError(f"lease: renew period {renew_s} s must be > 0 and under half the TTL {ttl_s} s")
        self.leases = leases
        self.holder = holder or holder_identity()
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self._lease: Lease | None = None
        self._act_until = 0.0  # monotonic deadline for acting on the last renewal
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.renew()
        self._thread = threading.Thread(target=self._loop, name="suanli-lease", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            self.renew()

    def renew(self) -> None:
        """One try to take or renew the lease."""
        started = time.monotonic()
        try:
            lease = self.leases.try_acquire(self.holder, self.ttl_s)
        except Exception as exc:  # noqa: BLE001 - any store outage (driver errors vary), logged: act until the deadline passes
            log.warning("lease renewal failed: %s", exc)
            return
        with self._lock:
            previous = self._lease
            self._lease = lease
            self._act_until = started + self.ttl_s - self.renew_s if lease else 0.0
        if lease and (previous is None or previous.token != lease.token):
            log.info("took the controller lease (token %d)", lease.token)
        elif previous and not lease:
            log.warning("lost the controller lease (token %d)", previous.token)

    def token(self) -> int | None:
        """The fencing token while this process holds a live lease, else None."""
        with self._lock:
            if self._lease is not None and time.monotonic() < self._act_until:
                return self._lease.token
            return None

    @property
    def role(self) -> str:
        return "active" if self.token() is not None else "standby"

    def lost(self) -> None:
        """Called when a fenced write was refused: stop acting at once."""
        with self._lock:
            self._lease = None
            self._act_until = 0.0

    def stop(self, release: bool = True) -> None:
        """Stop renewing; with `release`, give the lease up so a standby takes over at once."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        with self._lock:
            lease, self._lease = self._lease, None
        if release and lease is not None:
            try:
                self.leases.release(self.holder, lease.token)
            except Exception as exc:  # noqa: BLE001 - shutting down, logged: the lease expires by itself
                log.warning("could not release the lease: %s", exc)
