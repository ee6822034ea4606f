"""Keras 3's progress bar (``keras.utils.Progbar``): ``32/32 ━━━━━━━━━━━━━━━━━━━━ 1s
12ms/step - loss: 0.6931``, with the time per step in Keras's units (``s``, ``ms``, ``us``).
"""

import math
import sys
import time

__all__ = ["Progbar", "format_time"]


def format_time(seconds_per_unit, unit_name="step"):
    """``" 12ms/step"`` as Keras's ``Progbar._format_time``: whole seconds from 1 s (or
    exactly 0), milliseconds from 1 ms, else microseconds, each rounded to an integer."""
    t = seconds_per_unit
    if t >= 1 or t == 0:
        return f" {t:.0f}s/{unit_name}"
    if t >= 1e-3:
        return f" {t * 1e3:.0f}ms/{unit_name}"
    return f" {t * 1e6:.0f}us/{unit_name}"


def format_value(v):
    """A logged value as Keras prints it (``.4f``, ``.4e`` when tiny); a per-class result
    (a sequence or array) prints its mean, as Keras's progress bar does."""
    if not isinstance(v, (int, float)):
        values = [float(a) for a in _flat(v)]
        v = sum(values) / max(len(values), 1)
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def _flat(v):
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [a for item in v for a in _flat(item)]
    return [v]


class Progbar:
    """A progress bar for ``target`` steps (None if unknown).

    Parameters
    ----------
    target : int or None
    width : int, default=20
    verbose : {0, 1, 2}, default=1
        1 redraws one line as steps go; 2 prints one line when ``target`` is reached.
    interval : float, default=0.05
        Minimum seconds between redraws.
    unit_name : str, default="step"

    The time per step leaves out the first step (compilation, warm-up) once there are
    more, as Keras estimates it: ``(now - end of step 1) / (current - 1)``.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 unit_name="step", file=None):
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.file = file
        self._values = {}
        self._start = time.perf_counter()
        self._last_update = 0.0
        self._after_first = None
        self._prev_width = 0
        self._seen = 0
        self._dynamic = hasattr(self._out(), "isatty") and self._out().isatty()

    def _out(self):
        return self.file or sys.stdout

    def _step_time(self, current, now):
        if not current:
            return 0.0
        if self._after_first is not None and current > 1:
            t = (now - self._after_first) / (current - 1)
        else:
            t = (now - self._start) / current
        if current == 1:
            self._after_first = now
        return t

    def update(self, current, values=None, finalize=None):
        """Show step ``current`` with ``values`` (``[(name, value)]``, shown as given)."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or []:
            self._values[k] = v
        self._seen = current
        now = time.perf_counter()
        per_step = self._step_time(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            self._write(self._line(current, now, per_step, finalize), finalize)
        elif self.verbose == 2 and finalize:
            count = self._count(current)
            info = f"{count} - {now - self._start:.0f}s -" + \
                format_time(per_step, self.unit_name) + self._metrics()
            self._out().write(info + "\n")
            self._out().flush()
        self._last_update = now

    def _count(self, current):
        if self.target:
            digits = int(math.log10(self.target)) + 1
            return f"{current:{digits}d}/{self.target}"
        return f"{current:7d}/Unknown"

    def _line(self, current, now, per_step, finalize):
        bar = self._count(current)
        if self.target:
            done = int(self.width * current / self.target)
            bar += " " + "━" * done + "─" * (self.width - done)
        if self.target and not finalize:
            eta = per_step * (self.target - current)
            info = " " + (f"{eta // 3600:.0f}:{eta % 3600 // 60:02.0f}:{eta % 60:02.0f}"
                          if eta > 3600 else f"{eta // 60:.0f}:{eta % 60:02.0f}"
                          if eta > 60 else f"{eta:.0f}s")
        else:
            info = f" {now - self._start:.0f}s"
        return bar + info + format_time(per_step, self.unit_name) + self._metrics()

    def _metrics(self):
        return "".join(f" - {k}: {format_value(v)}" for k, v in self._values.items())

    def _write(self, line, finalize):
        out = self._out()
        if self._dynamic:
            pad = max(self._prev_width - len(line), 0)
            out.write("\r" + line + " " * pad + ("\n" if finalize else ""))
        elif finalize:
            out.write(line + "\n")
        self._prev_width = len(line)
        out.flush()

    def add(self, n, values=None):
        self.update(self._seen + n, values)
