"""A progress display for long work: frames done of total per film, rate and ETA.

One line per film, redrawn in place on a terminal (and printed every 10 s otherwise, so
logs stay readable). Ray's own progress bars are switched off by the job so the two do
not fight over the terminal.
"""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, totals: dict[str, int], stream=None, interval: float = 1.0):
        self.totals = dict(totals)
        self.done = {k: 0 for k in totals}
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = interval if self.tty else 10.0
        self._t0 = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, film_id: str, frames: int) -> None:
        with self._lock:
            self.done[film_id] = min(self.totals.get(film_id, 0), self.done.get(film_id, 0) + frames)
        self.draw()

    def set(self, film_id: str, frames: int) -> None:
        with self._lock:
            self.done[film_id] = frames
        self.draw()

    def line(self, film_id: str) -> str:
        done, total = self.done.get(film_id, 0), self.totals.get(film_id, 0)
        elapsed = max(1e-6, time.monotonic() - self._t0)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else float("inf")
        eta_s = "--:--" if eta == float("inf") else time.strftime("%H:%M:%S", time.gmtime(eta))
        pct = 100.0 * done / total if total else 100.0
        return f"{film_id}: {done}/{total} frames ({pct:5.1f}%) {rate:6.1f} fps ETA {eta_s}"

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        text = " | ".join(self.line(f) for f in self.totals)
        if self.tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.draw(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
