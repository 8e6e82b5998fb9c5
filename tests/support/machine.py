"""What a recorded figure depends on: this machine's CPU model, cores and memory.

One description for every table the suites and the benchmark write into docs/, so the reliability,
security and performance pages name the same machine the same way.
"""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    """Total memory in GiB, None where /proc/meminfo cannot be read."""
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    except OSError:
        return None
    return int(m.group(1)) / 2 ** 20 if m else None


def describe() -> str:
    """One line for a table: "2 x AMD EPYC, 24 GiB, Linux 6.1"."""
    ram = ram_gib()
    mem = f", {ram:.0f} GiB" if ram is not None else ""
    return f"{os.cpu_count()} x {cpu_model()}{mem}, {platform.system()} {platform.release()}"
