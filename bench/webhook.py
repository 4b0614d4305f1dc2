"""Pod webhook figures, side by side with the limit baseline (bench/baseline: the same TLS and
HTTP stack answering a fixed, pre-encoded copy of our answer): requests/s, latency and server CPU
per request with keep-alive at 1, 2, 8 and 64 connections (wrk), new TLS connections per second
(hey without keep-alive), RSS, and exec to the first answered review. Sends the project's sample
review, only to 127.0.0.1.

Usage: python3 bench/webhook.py  (expects both release binaries; make bench builds them)
Env: BENCH_DURATION (seconds per load, default 5), BENCH_ROUNDS (default 3).

With two cores or more, the servers run on the last core and the load tools on the others
(taskset): sharing both cores, the scheduler's placement of the load tool's and the server's
threads swung a figure by up to 1.5× from one run to the next. So each figure is one core's
worth of server. The two servers are loaded one after the other, never together, alternating,
for BENCH_ROUNDS rounds; the table shows the round with the median req/s.
"""

import csv
import http.client
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RELEASE, ROOT, cpu_seconds, hwm_kib, percentile_ms, rss_kib, write

SAMPLE = ROOT / "testdata" / "admission" / "pod-create-v1.json"
CERTS = ROOT / "testdata" / "certs"
FQDN = "foo.bar."
PATH = "/webhook/pod-apiserver-env"
PORTS = {"ours": 19443, "baseline": 19444}
CONNECTIONS = [1, 2, 8, 64]
CORES = os.cpu_count() or 1
# taskset prefixes: the servers on the last core, the load tools on the rest.
SERVER_CPUS = ["taskset", "-c", str(CORES - 1)] if CORES > 1 else []
LOAD_CPUS = ["taskset", "-c", f"0-{CORES - 2}"] if CORES > 1 else []

# wrk prints one RESULT line: requests, seconds, p50/p99/p99.9 in µs, errors (incl. non-2xx).
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{sample}", "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %f %d %d %d %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def start(name):
    port = PORTS[name]
    if name == "ours":
        args = [str(RELEASE / "apiserver-proxy-pod-webhook"), f"--apiserver-fqdn={FQDN}",
                f"--cert-dir={CERTS / 'server-ecdsa'}", "--host=127.0.0.1", f"--port={port}"]
    else:
        args = [str(RELEASE / "webhook-baseline"), str(CERTS / "server-ecdsa"), str(port), str(SAMPLE), FQDN]
    started = time.monotonic()
    process = subprocess.Popen(SERVER_CPUS + args, stderr=subprocess.DEVNULL)
    context = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
    body = SAMPLE.read_bytes()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=2)
            connection.request("POST", PATH, body, {"Content-Type": "application/json"})
            if connection.getresponse().status == 200:
                return process, time.monotonic() - started
        except OSError:
            time.sleep(0.001)


def keepalive(port, connections, duration, script):
    threads = min(2, connections)
    out = subprocess.run(LOAD_CPUS + ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(script),
                          f"https://127.0.0.1:{port}{PATH}"], check=True, capture_output=True, text=True).stdout
    fields = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    requests, seconds = int(fields[0]), float(fields[1])
    p50, p99, p999, errors = (int(f) for f in fields[2:])
    return {"rps": round(requests / seconds), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
            "p999_ms": p999 / 1000, "errors": errors, "duration_s": seconds}


def handshakes(port, duration, work):
    """hey with keep-alive off: a new TCP and TLS connection (full handshake) per request.
    `-host localhost`: hey sends the Host header as the TLS server name, and with a port in it
    rustls refuses the name, as RFC 6066 wants a bare DNS name."""
    out = work / f"hey-{port}.csv"
    with open(out, "w") as sink:
        subprocess.run(LOAD_CPUS + ["hey", "-z", f"{duration}s", "-c", "8", "-disable-keepalive", "-host", "localhost",
                        "-m", "POST", "-T", "application/json", "-D", str(SAMPLE), "-o", "csv",
                        f"https://127.0.0.1:{port}{PATH}"], check=True, stdout=sink)
    with open(out) as rows:
        records = list(csv.DictReader(rows))
    times = [float(r["response-time"]) for r in records if r["status-code"] == "200"]
    return {"rps": round(len(records) / duration), "p50_ms": percentile_ms(times, 50),
            "p99_ms": percentile_ms(times, 99), "p999_ms": percentile_ms(times, 99.9),
            "errors": len(records) - len(times), "duration_s": duration}


def measured(process, load, port):
    """One load against one server, with the server's CPU time per request (user + system)."""
    before = cpu_seconds(process.pid)
    result = load(port)
    seconds = cpu_seconds(process.pid) - before
    requests = result["rps"] * result["duration_s"]
    result["cpu_us_per_request"] = round(seconds / requests * 1e6, 1) if requests else None
    return result


def median_round(results):
    """The round with the median req/s: one real run, not a blend of several."""
    return sorted(results, key=lambda r: r["rps"])[len(results) // 2]


# Guard (issue 14): keep-alive throughput at these connection counts stays at least this share of
# the limit baseline's; the script fails below it, after writing the figures.
GUARD_CONNECTIONS = [8, 64]
GUARD_RATIO = 0.75


def ratio(ours, baseline):
    return round(ours["rps"] / baseline["rps"], 2) if baseline["rps"] else None


def main():
    duration = int(os.environ.get("BENCH_DURATION", "5"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    figures = {"duration_s": duration, "rounds": rounds, "server_cpus": " ".join(SERVER_CPUS),
               "load_cpus": " ".join(LOAD_CPUS), "loads": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        work = Path(tmp)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT.format(sample=SAMPLE))
        servers = {name: start(name) for name in PORTS}
        (ours, startup), _ = servers["ours"], servers["baseline"]
        time.sleep(1)
        figures["idle_rss_kib"] = rss_kib(ours.pid)
        figures["startup_to_first_answer_ms"] = round(startup * 1000, 1)
        loads = [(f"keep-alive, {c} connection{'s' if c > 1 else ''}",
                  lambda port, c=c: keepalive(port, c, duration, script)) for c in CONNECTIONS]
        loads.append(("new TLS connection per request (ECDSA P-256), 8 clients",
                      lambda port: handshakes(port, duration, work)))
        for label, load in loads:
            runs = {name: [] for name in PORTS}
            for _ in range(rounds):
                for name in PORTS:
                    runs[name].append(measured(servers[name][0], load, PORTS[name]))
            result = {name: median_round(runs[name]) for name in PORTS}
            result["ratio"] = ratio(result["ours"], result["baseline"])
            result["all_rps"] = {name: [r["rps"] for r in runs[name]] for name in PORTS}
            figures["loads"][label] = result
            o, b = result["ours"], result["baseline"]
            rows.append((f"webhook {label}: req/s; p50 / p99 / p99.9; server CPU per request",
                         f"{o['rps']}; {o['p50_ms']} / {o['p99_ms']} / {o['p999_ms']} ms; "
                         f"{o['cpu_us_per_request']} µs"
                         + (f"; {o['errors']} errors" if o["errors"] else ""),
                         f"{b['rps']}; {b['p50_ms']} / {b['p99_ms']} / {b['p999_ms']} ms; "
                         f"{b['cpu_us_per_request']} µs", result["ratio"]))
        figures["peak_rss_kib"] = hwm_kib(ours.pid)
        for process, _ in servers.values():
            process.terminate()
            process.wait(15)
    rows += [
        ("webhook RSS idle / peak under load", f"{figures['idle_rss_kib'] / 1024:.1f} / {figures['peak_rss_kib'] / 1024:.1f} MiB"),
        ("webhook exec to first answered review", f"{figures['startup_to_first_answer_ms']} ms"),
        ("webhook release binary size", f"{(RELEASE / 'apiserver-proxy-pod-webhook').stat().st_size // 1024} KiB"),
    ]
    write("webhook", figures, rows)
    below = [f"{c} connections: {figures['loads'][label]['ratio']}"
             for c in GUARD_CONNECTIONS
             for label in [f"keep-alive, {c} connections"]
             if (figures["loads"][label]["ratio"] or 0) < GUARD_RATIO]
    if below:
        sys.exit(f"guard: keep-alive throughput below {GUARD_RATIO} of the baseline's: {', '.join(below)}")


if __name__ == "__main__":
    main()
