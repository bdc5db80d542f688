"""One run per run directory: `LOCK.json` with the holder's host, pid, start and heartbeat.

A second run on the same directory refuses with a line naming the holder and its age.
A lock is stale (and taken over, with a warning) when its holder's heartbeat is older
than `stale_after` seconds, or when the holder ran on this host and its process is gone
(a driver killed with SIGKILL leaves its lock behind; the same command resumes at once).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

from pipeline import log, storage
from pipeline.errors import InputError

LOCK_NAME = "LOCK.json"
HEARTBEAT_S = 20.0
STALE_AFTER_S = 120.0


class RunDirBusy(InputError):
    pass


@dataclass
class RunLock:
    run_dir: str
    stale_after: float = STALE_AFTER_S
    heartbeat: float = HEARTBEAT_S

    def __post_init__(self):
        self.uri = storage.join(self.run_dir, LOCK_NAME)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = time.time()

    def _body(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "started": self.started, "heartbeat": time.time()}).encode()

    def acquire(self) -> "RunLock":
        storage.makedirs(self.run_dir)
        held = self._read()
        if held is not None:
            why = self._stale(held)
            if why is None:
                raise RunDirBusy(f"{self.run_dir}: in use by another run ({_describe(held)}); "
                                 f"wait for it to end, or remove {self.uri} if that run is gone")
            log.warning("%s: taking over a stale lock (%s: %s)", self.run_dir, _describe(held), why)
        storage.write_bytes(self.uri, self._body())
        # Two runs racing for a free directory: the later write wins; the loser sees it.
        time.sleep(0.05)
        now = self._read()
        if now is None or now.get("token") != self.token:
            raise RunDirBusy(f"{self.run_dir}: another run took it at the same moment ({_describe(now or {})})")
        self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> dict | None:
        try:
            if not storage.exists(self.uri):
                return None
            return json.loads(storage.read_bytes(self.uri))
        except (FileNotFoundError, ValueError):
            return None

    def _stale(self, held: dict) -> str | None:
        age = time.time() - float(held.get("heartbeat", 0))
        if age > self.stale_after:
            return f"no heartbeat for {age:.0f}s"
        if held.get("host") == socket.gethostname() and not storage.process_alive(int(held.get("pid", 0))):
            return "its process is gone"
        return None

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                storage.write_bytes(self.uri, self._body())
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.debug("lock heartbeat failed: %s", exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            held = self._read()
            if held and held.get("token") == self.token:
                storage.remove(self.uri)
        except Exception as exc:  # noqa: BLE001 - a left lock is detected as stale later
            log.debug("could not remove the lock: %s", exc)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(held: dict) -> str:
    started = held.get("started")
    age = f", started {_ago(time.time() - float(started))} ago" if started else ""
    beat = held.get("heartbeat")
    last = f", last heartbeat {_ago(time.time() - float(beat))} ago" if beat else ""
    return f"host {held.get('host', '?')} pid {held.get('pid', '?')}{age}{last}"


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

