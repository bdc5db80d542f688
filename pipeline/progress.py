"""A progress display for long runs: a line per film at work and one overall line.

    reel1: colouring 412/960 frames (42.9%)
    reel2: planning
    films 1/4 done, 0 failed · 1,372/3,840 frames · 2.3 h of film per hour · ETA 00:04:10

On a terminal the block is redrawn in place; otherwise it is printed every 10 s, so logs
stay readable. A film that ends prints its own line once. Frames are set, never added:
the caller reports what is durable plus what is in flight per shard, so a retried shard
cannot be counted twice.
"""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, totals: dict[str, int], stream=None, interval: float = 1.0,
                 rates: dict[str, float] | None = None):
        self.totals = dict(totals)
        self.rates = dict(rates or {})  # film frames per second (for hours of film per hour)
        self.done = {k: 0 for k in totals}
        self.status = {k: "queued" for k in totals}
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = interval if self.tty else 10.0
        self._t0 = time.monotonic()
        self.kept = {k: 0 for k in totals}  # frames done by an earlier run (not this run's rate)
        self._last = 0.0
        self._drawn = 0  # lines of the block on screen (tty)
        self._lock = threading.Lock()

    def set(self, film_id: str, frames: int, status: str | None = None) -> None:
        with self._lock:
            self.done[film_id] = max(0, min(frames, self.totals.get(film_id, frames)))
            if status and status != self.status.get(film_id):
                old, self.status[film_id] = self.status.get(film_id), status
                if status in ("done", "failed", "skipped") and old not in ("done", "failed", "skipped"):
                    self._print(f"{film_id}: {status} ({self.done[film_id]}/{self.totals.get(film_id, 0)} frames)")
        self.draw()

    def keep(self, film_id: str, frames: int) -> None:
        """Frames of `film_id` an earlier run finished: shown as done, not in the rate."""
        with self._lock:
            self.kept[film_id] = frames
        self.set(film_id, max(frames, self.done.get(film_id, 0)))

    def add(self, film_id: str, frames: int) -> None:
        self.set(film_id, self.done.get(film_id, 0) + frames)

    def line(self, film_id: str) -> str:
        done, total = self.done.get(film_id, 0), self.totals.get(film_id, 0)
        pct = 100.0 * done / total if total else 100.0
        return f"{film_id}: {self.status.get(film_id, '')} {done}/{total} frames ({pct:5.1f}%)"

    def overall(self) -> str:
        done, total = sum(self.done.values()), sum(self.totals.values())
        elapsed = max(1e-6, time.monotonic() - self._t0)
        rate = (done - sum(self.kept.values())) / elapsed  # frames coloured by this run per second
        eta = (total - done) / rate if rate > 0 else float("inf")
        eta_s = "--:--:--" if eta == float("inf") else time.strftime("%H:%M:%S", time.gmtime(eta))
        film_s = sum((self.done[f] - self.kept.get(f, 0)) / self.rates[f] for f in self.done if self.rates.get(f))
        hph = f" · {film_s / elapsed:.2f} h of film per hour" if self.rates else ""
        n_done = sum(1 for s in self.status.values() if s in ("done", "skipped"))
        n_failed = sum(1 for s in self.status.values() if s == "failed")
        return (f"films {n_done}/{len(self.totals)} done, {n_failed} failed · {done:,}/{total:,} frames "
                f"· {rate:.1f} fps{hph} · ETA {eta_s}")

    def _active(self) -> list[str]:
        return [f for f, s in self.status.items() if s in ("planning", "colouring", "assembling")]

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        lines = [self.line(f) for f in self._active()[:8]] + [self.overall()]
        with self._lock:
            if self.tty:
                up = f"\033[{self._drawn}F" if self._drawn else "\r"
                self.stream.write(up + "".join(f"\033[K{l}\n" for l in lines))
                self._drawn = len(lines)
            else:
                self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def _print(self, text: str) -> None:
        if self.tty and self._drawn:
            self.stream.write(f"\033[{self._drawn}F\033[J")
            self._drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.draw(force=True)
