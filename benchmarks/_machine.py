"""Machine facts every benchmark prints beside its figures."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else whatever `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict:
    """CPU, cores, threads, versions and the load at the start: what a figure is measured on."""
    import numba
    import numpy as np

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": os.environ.get("BLINDPROOF_THREADS", "1"),
            "numba_threads": numba.get_num_threads(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "platform": platform.platform(),
            "loadavg_1m_start": os.getloadavg()[0]}


def timed(fn):
    """``fn()`` with its wall-clock and process CPU seconds: (result, wall, cpu)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0
