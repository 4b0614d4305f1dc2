"""Shared pieces of the benchmark scripts: throwaway namespaces, process figures, result files.

Every benchmark runs its programs inside network namespaces it creates itself and removes at the
end; traffic never leaves them or loopback.
"""

import json
import math
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "target" / "bench"
RELEASE = ROOT / "target" / "release"


def sh(command, check=True):
    return subprocess.run(command, shell=True, check=check, capture_output=True, text=True)


class Netns:
    """A network namespace with lo up, deleted (with every process in it) on exit."""

    def __init__(self, name):
        self.name = f"{name}-{os.getpid()}"

    def __enter__(self):
        sh(f"ip netns add {self.name}")
        sh(f"ip -n {self.name} link set lo up")
        return self

    def __exit__(self, *_):
        sh(f"ip netns pids {self.name} | xargs -r kill -TERM", check=False)
        time.sleep(0.3)
        sh(f"ip netns pids {self.name} | xargs -r kill -KILL", check=False)
        sh(f"ip netns del {self.name}", check=False)

    def run(self, command, check=True):
        return sh(f"ip netns exec {self.name} {command}", check=check)

    def popen(self, args, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kwargs)


def _status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def rss_kib(pid):
    return _status_kib(pid, "VmRSS")


def hwm_kib(pid):
    """The peak RSS of the process so far."""
    return _status_kib(pid, "VmHWM")


def fd_count(pid):
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary_ms(samples):
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "max_ms": round(max(samples) * 1000, 3),
    }


def percentile_ms(samples_s, pct):
    """The nearest-rank percentile of samples in seconds, in milliseconds."""
    ordered = sorted(samples_s)
    if not ordered:
        return None
    rank = max(0, math.ceil(pct / 100 * len(ordered)) - 1)
    return round(ordered[rank] * 1000, 3)


def write(name, figures, rows):
    """Writes target/bench/NAME.json (the figures, and the rows as `table`) and NAME.md.

    A row is `(figure, value)`, or `(figure, ours, limit baseline, ratio)` where a baseline
    exists; bench/update_readme.py joins every NAME.json's rows into the one table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [list(row) + [""] * (4 - len(row)) for row in rows]
    (RESULTS / f"{name}.json").write_text(json.dumps({**figures, "table": rows}, indent=2) + "\n")
    table = markdown_table(rows)
    (RESULTS / f"{name}.md").write_text(table)
    print(table, end="")


def markdown_table(rows):
    lines = ["| figure | value | limit baseline | ratio to baseline |", "| --- | --- | --- | ---: |"]
    lines += ["| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
