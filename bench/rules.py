"""iptables rule figures, nft and legacy backends: how fast the sidecar puts its rules back after
`iptables -t raw -F` (three of its five rules gone), and how many iptables processes it starts per
idle minute.

Usage: python3 bench/rules.py  (root; expects target/release/apiserver-proxy-sidecar; needs strace)
Env: BENCH_FLUSHES (default 20), BENCH_IDLE_SECONDS (default 60), BENCH_BACKENDS ("nft legacy").

Each backend runs in a throwaway namespace, with a private xtables lock file, so the host's rules
and /run/xtables.lock are never touched. Repair is timed inside the namespace, by one shell, from
just before the flush to the first `iptables-save` that shows all three rules again (looked at
back to back; one look takes about 2 ms, so figures carry that much). Flushes are spaced by
random pauses, so they fall at every phase of the legacy backend's 5 s poll.
"""

import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from common import RELEASE, RESULTS, Netns, summary_ms, write

ADDRESS = "10.96.0.2"
SIDECAR = str(RELEASE / "apiserver-proxy-sidecar")
LEGACY_POLL = 5.0  # adapters::iptables::LEGACY_POLL
PAUSE = {"nft": 0.5, "legacy": LEGACY_POLL}


# Run inside the namespace by one shell: `{change}`, then iptables-save back to back until the raw
# table holds our three rules again; prints the nanoseconds in between (gives up after 15 s).
CHANGE_AND_TIME = """timeout 15 sh -c '
start=$(date +%s%N)
{change}
until [ "$(iptables-{backend}-save -t raw | grep -c -- "--comment apiserver-proxy")" = 3 ]; do :; done
echo $(($(date +%s%N) - start))'"""


def time_until_ours(ns, backend, change=":"):
    timed = ns.run(CHANGE_AND_TIME.format(backend=backend, change=change), check=False)
    if timed.returncode != 0:
        raise RuntimeError(f"{backend}: the sidecar's rules were not back within 15 s after `{change}`"
                           " (does this build manage them with --setup-iptables? see target/bench/rules-{backend}.log)")
    return int(timed.stdout) / 1e9


def iptables_execs(pid, seconds, trace):
    """iptables tools `pid` and its children start in `seconds`: successful execve calls (each
    PATH entry tried before the right one fails with ENOENT and is not counted)."""
    subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-f", "-qq", "-e", "trace=execve",
                    "-e", "signal=none", "-o", str(trace), "-p", str(pid)], check=False)
    return sum(1 for line in trace.read_text().splitlines()
               if "execve(" in line and "iptables" in line and line.endswith("= 0"))


def measure(backend, flushes, idle_seconds, work):
    with Netns(f"bench-rules-{backend}") as ns:
        if backend == "legacy":
            # What the kubelet leaves on a legacy node; the sidecar's detection follows it.
            ns.run("iptables-legacy -t mangle -N KUBE-IPTABLES-HINT")
        RESULTS.mkdir(parents=True, exist_ok=True)
        log = open(RESULTS / f"rules-{backend}.log", "w")
        sidecar = ns.popen([SIDECAR, f"--ip-address={ADDRESS}", "--setup-iptables"], stderr=log)
        time_until_ours(ns, backend)  # the first sync wrote them
        latencies = []
        for _ in range(flushes):
            time.sleep(0.2 + random.random() * PAUSE[backend])
            latencies.append(time_until_ours(ns, backend, f"iptables-{backend} -t raw -F"))
        time.sleep(2)  # the last repair's own nf_tables events settle first
        spawned = iptables_execs(sidecar.pid, idle_seconds, work / f"{backend}.strace")
        sidecar.terminate()
        sidecar.wait(10)
        log.close()
    errors = [line for line in (RESULTS / f"rules-{backend}.log").read_text().splitlines() if line.startswith("E")]
    if errors:
        raise RuntimeError(f"{backend}: the sidecar logged errors:\n" + "\n".join(errors))
    return summary_ms(latencies), round(spawned * 60 / idle_seconds, 1)


def main():
    flushes = int(os.environ.get("BENCH_FLUSHES", "20"))
    idle_seconds = int(os.environ.get("BENCH_IDLE_SECONDS", "60"))
    backends = os.environ.get("BENCH_BACKENDS", "nft legacy").split()
    figures, rows = {"idle_seconds": idle_seconds}, []
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        work = Path(tmp)
        os.environ["XTABLES_LOCKFILE"] = str(work / "xtables.lock")
        for backend in backends:
            repair, per_minute = measure(backend, flushes, idle_seconds, work)
            figures[backend] = {"repair_after_raw_flush": repair, "iptables_processes_per_idle_minute": per_minute}
            trigger = "nf_tables event" if backend == "nft" else f"{LEGACY_POLL:g} s poll"
            rows += [
                (f"sidecar, {backend}: rules back after `iptables -t raw -F` (median / max of {repair['n']}; {trigger})",
                 f"{repair['median_ms']} ms / {repair['max_ms']} ms"),
                (f"sidecar, {backend}: iptables processes per idle minute (`--sync-interval=1m0s`)", f"{per_minute}"),
            ]
    write("rules", figures, rows)


if __name__ == "__main__":
    main()
