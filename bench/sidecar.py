"""Sidecar figures: address repair latency, idle RSS and CPU, start-up to the address present.

Usage: python3 bench/sidecar.py  (root; expects target/release/apiserver-proxy-sidecar)
Env: BENCH_IDLE_SECONDS (default 60), BENCH_DELETIONS (default 20).
"""

import os
import re
import subprocess
import time
from datetime import datetime

from common import RELEASE, Netns, cpu_seconds, rss_kib, summary_ms, write

ADDRESS = "10.96.0.2"
SIDECAR = str(RELEASE / "apiserver-proxy-sidecar")
STAMP = re.compile(r"^\[(?P<ts>[0-9T:.\-]+)\] (?P<deleted>Deleted )?.*inet (?P<addr>[0-9.]+)/32")


def present(ns):
    return f"{ADDRESS}/32" in ns.run("ip addr show dev lo").stdout


def wait(ns, want, limit=5.0):
    end = time.monotonic() + limit
    while present(ns) != want:
        if time.monotonic() > end:
            raise RuntimeError(f"address presence did not become {want}")
        time.sleep(0.002)


def repair_latencies(monitor_lines):
    """Kernel timestamps of each deletion and the re-add that follows, from `ip -ts monitor`."""
    latencies, deleted_at = [], None
    for line in monitor_lines:
        match = STAMP.match(line)
        if not match or match["addr"] != ADDRESS:
            continue
        at = datetime.fromisoformat(match["ts"]).timestamp()
        if match["deleted"]:
            deleted_at = at
        elif deleted_at is not None:
            latencies.append(at - deleted_at)
            deleted_at = None
    return latencies


def main():
    idle_seconds = int(os.environ.get("BENCH_IDLE_SECONDS", "60"))
    deletions = int(os.environ.get("BENCH_DELETIONS", "20"))
    with Netns("bench-sidecar") as ns:
        started = time.monotonic()
        sidecar = ns.popen([SIDECAR, f"--ip-address={ADDRESS}", "--cleanup"], stderr=subprocess.DEVNULL)
        wait(ns, True)
        startup = time.monotonic() - started
        monitor = ns.popen(["ip", "-ts", "monitor", "address"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        for _ in range(deletions):
            ns.run(f"ip addr del {ADDRESS}/32 dev lo")
            wait(ns, True)
            time.sleep(0.05)
        time.sleep(0.3)
        monitor.terminate()
        latencies = repair_latencies(monitor.communicate()[0].splitlines())
        pid = int(ns.run("ip netns pids " + ns.name).stdout.split()[0])
        cpu_before = cpu_seconds(pid)
        time.sleep(idle_seconds)
        cpu_idle = cpu_seconds(pid) - cpu_before
        rss = rss_kib(pid)
        sidecar.terminate()
        sidecar.wait(10)
    repair = summary_ms(latencies)
    figures = {
        "address_repair": repair,
        "startup_to_address_ms": round(startup * 1000, 1),
        "idle_rss_kib": rss,
        "idle_cpu_seconds": round(cpu_idle, 3),
        "idle_seconds": idle_seconds,
    }
    write("sidecar", figures, [
        (f"sidecar address repair after `ip addr del` (median / max of {repair['n']}, default `--sync-interval=1m0s`)",
         f"{repair['median_ms']} ms / {repair['max_ms']} ms"),
        ("sidecar exec to address present (includes `ip netns exec`)", f"{figures['startup_to_address_ms']} ms"),
        ("sidecar idle RSS", f"{rss / 1024:.1f} MiB"),
        (f"sidecar CPU time over {idle_seconds} s idle", f"{cpu_idle:.3f} s"),
    ])


if __name__ == "__main__":
    main()
