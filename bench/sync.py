"""The cost of one full sync that changes nothing, and how it grows with the interfaces and
addresses on the node: 0, 10, 100 and 1,000 veth pairs (one address on each pair's first end) in a
throwaway namespace. Read from the sidecar's own histogram (`sync_duration_seconds`, sum over
count of the interval syncs after the first), with `--sync-interval=100ms`, address alone and
with the iptables rules (nft).

Usage: python3 bench/sync.py  (root; expects target/release/apiserver-proxy-sidecar)
Env: BENCH_SYNC_SECONDS (seconds of syncs per point, default 5), BENCH_PAIRS ("0 10 100 1000").
"""

import os
import subprocess
import time

from common import RELEASE, Netns, write

ADDRESS = "10.96.0.2"
SIDECAR = str(RELEASE / "apiserver-proxy-sidecar")
METRICS = "127.0.0.1:9090"
SERIES = "apiserver_proxy_sidecar_sync_duration_seconds"


def add_pairs(ns, pairs):
    """One `ip -batch` for all of them: a thousand `ip` processes would take longer than the
    measurement."""
    commands = []
    for i in range(pairs):
        commands += [f"link add va{i} type veth peer name vb{i}",
                     f"addr add 10.{100 + i // 250}.{i % 250}.1/24 dev va{i}",
                     f"link set va{i} up", f"link set vb{i} up"]
    if commands:
        subprocess.run(["ip", "-n", ns.name, "-batch", "-"], input="\n".join(commands), text=True, check=True)


def histogram(ns):
    text = ns.run(f"curl -sf http://{METRICS}/metrics").stdout
    values = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"{SERIES}_{part} "):
                values[part] = float(line.split()[1])
    return values["sum"], values["count"]


def mean_sync_ms(pairs, rules, seconds):
    with Netns(f"bench-sync-{pairs}") as ns:
        add_pairs(ns, pairs)
        args = [SIDECAR, f"--ip-address={ADDRESS}", "--sync-interval=100ms", f"--metrics-bind-address={METRICS}"]
        sidecar = ns.popen(args + (["--setup-iptables"] if rules else []), stderr=subprocess.DEVNULL)
        time.sleep(1.5)  # past the first sync, which adds, and the events of its own changes
        sum_before, count_before = histogram(ns)
        time.sleep(seconds)
        sum_after, count_after = histogram(ns)
        sidecar.terminate()
        sidecar.wait(10)
    return round((sum_after - sum_before) / (count_after - count_before) * 1000, 3)


def main():
    seconds = int(os.environ.get("BENCH_SYNC_SECONDS", "5"))
    counts = [int(n) for n in os.environ.get("BENCH_PAIRS", "0 10 100 1000").split()]
    figures, rows = {"sync_ms": {}}, []
    for rules in (False, True):
        what = "address + nft rules" if rules else "address"
        points = {n: mean_sync_ms(n, rules, seconds) for n in counts}
        figures["sync_ms"][what] = points
        small, large = min(counts), max(counts)
        per_interface_us = round((points[large] - points[small]) * 1000 / (2 * (large - small)), 2)
        figures["sync_ms"][f"{what}: µs per interface"] = per_interface_us
        rows.append((f"sidecar one full sync, no change ({what}), with 0 / 10 / 100 / 1,000 veth pairs",
                     " / ".join(f"{points[n]} ms" for n in counts)
                     + f"; {per_interface_us} µs per interface ({small} to {large} pairs)"))
    write("sync", figures, rows)


if __name__ == "__main__":
    main()
