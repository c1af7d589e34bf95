"""Progress of a long command on stderr: a bar with ETA on a terminal, plain lines in a log, JSON events
with ``--json`` (stdout then carries only the command's result, so both can be piped)."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

BAR_WIDTH = 28
LINE_EVERY_S = 1.0  # a log gets at most one step line a second (a terminal's bar redraws freely)


class Reporter:
    """Call it with a message for a stage line; :meth:`step` reports ``done`` of ``total`` units of a
    stage. Modes: ``json`` events (one object per line), a redrawn bar when ``stream`` is a terminal,
    else timestamped lines."""

    def __init__(self, json_events: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.json = json_events
        self.tty = not json_events and bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._stage: tuple[str, float] | None = None  # (name, started)
        self._last_line = 0.0
        self._bar_open = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, message: str, end: str = "\n") -> None:
        """A stage line (e.g. 'trace committed: ...'); ``end=""`` leaves the line open for the caller."""
        if self.json:
            self._event({"event": "message", "text": message})
            return
        self._close_bar()
        self._write(f"[{self.elapsed():6.2f}s] {message}{end}")

    def step(self, stage: str, done: int, total: int, detail: str = "") -> None:
        """``done`` of ``total`` units of ``stage``; the ETA assumes the remaining units take as long as
        the ones done."""
        now = time.perf_counter()
        if self._stage is None or self._stage[0] != stage:
            self._stage = (stage, now)
        spent = now - self._stage[1]
        eta = spent / done * (total - done) if done and total >= done else None
        if self.json:
            self._event({"event": "progress", "stage": stage, "done": done, "total": total,
                         "eta_s": None if eta is None else round(eta, 2), "detail": detail})
            return
        if self.tty:
            filled = BAR_WIDTH * done // total if total else BAR_WIDTH
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            tail = f"ETA {eta:5.1f}s" if eta is not None else "ETA   ?  "
            self._write(f"\r[{self.elapsed():6.2f}s] {stage} [{bar}] {done}/{total} {tail} {detail[:30]:<30}")
            self._bar_open = done < total
            if done >= total:
                self._write("\n")
            return
        if now - self._last_line >= LINE_EVERY_S or done >= total:
            self._last_line = now
            eta_txt = f", ETA {eta:.1f} s" if eta is not None and done < total else ""
            self._write(f"[{self.elapsed():6.2f}s] {stage}: {done}/{total}{eta_txt}" +
                        (f" ({detail})" if detail else "") + "\n")

    def _close_bar(self) -> None:
        if self._bar_open:
            self._write("\n")
            self._bar_open = False

    def _event(self, obj: dict) -> None:
        obj["elapsed_s"] = round(self.elapsed(), 3)
        self._write(json.dumps(obj) + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
