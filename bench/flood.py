"""Pod webhook under a connection flood, only on 127.0.0.1: its RSS (peak, and after), how many
connections it holds, and the latency of a good review sent on a new connection meanwhile.

Floods, one after the other, each of FLOOD_CONNECTIONS (default 5,000) connection attempts that
are then left idle:
- plain TCP: connections that never start their TLS handshake (half-open handshakes);
- idle TLS: connections that complete the handshake and send nothing.
Meanwhile a prober sends the sample review on a new connection (TCP, TLS handshake, request)
every 100 ms. Then three attacks, each reopening a connection as soon as the server closes it,
while the prober runs as before, each with its own peak RSS (VmHWM, reset before it):
- the stall attack of issue 21, for STALL_S seconds: STALLED connections each send a request head
  announcing 3 MiB and 10 bytes of body, then fall silent;
- large bodies (issue 26), for ATTACK_S seconds: LARGE_BODIES connections each send all of the
  largest body allowed but its last byte, then fall silent;
- drip (issue 26), for ATTACK_S seconds: DRIPPERS connections each send a request head and then a
  byte of body every DRIP_EVERY_S.
After each flood's connections close, RSS is read again 10 s and 30 s later, the
webhook idle meanwhile: whether its allocator gives the memory back. The TLS flood runs twice:
the second must neither add to the first's peak nor keep more after. Before the floods, RSS per
idle TLS connection is measured below the cap.

Usage: python3 bench/flood.py  (expects the release webhook; make bench builds it)
       python3 bench/flood.py --attack HOST PORT SECONDS: only issue 26's two attacks at once,
       against a webhook elsewhere (the cluster tier's replica), its certificate not verified;
       prints the connections each opened as JSON.
Env: FLOOD_CONNECTIONS (default 5000); FLOOD_BINARY, the webhook to run (default the release
build; `make docker-binaries` puts the static one, as the image has it, in target/docker/).
"""

import json
import multiprocessing
import os
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time

from common import RELEASE, ROOT, fd_count, hwm_kib, percentile_ms, rss_kib, write

SAMPLE = ROOT / "testdata" / "admission" / "pod-create-v1.json"
CERTS = ROOT / "testdata" / "certs"
PATH = "/webhook/pod-apiserver-env"
PORT = 19445
PROBE_EVERY_S = 0.1
BELOW_CAP = 400
# The stall attack (issue 21): more connections than the cap of 512, parked mid-body.
STALLED = 520
STALL_S = 20
# Issue 21 announced 7 MiB, now refused at the head: the largest body allowed instead.
STALL_HEAD = (f"POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              "Content-Length: 3145728\r\n\r\n" + '{"kind": "').encode()
# Issue 26's attacks: large bodies stalled near their end, and bodies dripped a byte at a time.
# MAX_BODY is the webhook's MAX_BODY_BYTES (adapters/src/http/admission.rs).
MAX_BODY = 3 * 1024 * 1024
LARGE_BODIES = 16
DRIPPERS = 520
DRIP_EVERY_S = 0.1
ATTACK_S = 20
# The issue's own attack announced 7 MiB and sent 7,000,000 bytes; now refused at its head (413),
# so the bench sends the most a body may hold, less its last byte.
BODY_DECLARED = MAX_BODY
BODY_SENT = MAX_BODY - 1
# Seconds after a flood's connections close at which RSS is read again, the server idle meanwhile.
AFTER_S = (10, 30)
CORES = os.cpu_count() or 1
SERVER_CPUS = ["taskset", "-c", str(CORES - 1)] if CORES > 1 else []


# Where the attacks go; `--attack` points them at a webhook elsewhere, unverified.
HOST = "127.0.0.1"
VERIFY = True


def context():
    if not VERIFY:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx
    ctx = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def review_request(body):
    head = (f"POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def good_request(ctx, request):
    """One review on a new connection: the seconds it took, or None when it failed."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(request)
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
        if not answer.startswith(b"HTTP/1.1 200"):
            return None
    except OSError:
        return None
    return time.monotonic() - started


class Prober:
    """Sends a good review every PROBE_EVERY_S until stopped, and samples the server's RSS, from a
    process of its own: a thread would wait for the flooding thread's GIL, and measure that."""

    def __init__(self, pid):
        self.pid, self.stop, self.results = pid, multiprocessing.Event(), multiprocessing.Queue()
        self.process = multiprocessing.Process(target=self.run, daemon=True)

    def start(self):
        self.process.start()

    def run(self):
        ctx, request = context(), review_request(SAMPLE.read_bytes())
        times, failed, peak_kib = [], 0, 0
        while not self.stop.is_set():
            took = good_request(ctx, request)
            if took is None:
                failed += 1
            else:
                times.append(took)
            peak_kib = max(peak_kib, rss_kib(self.pid))
            self.stop.wait(PROBE_EVERY_S)
        self.results.put((times, failed, peak_kib))

    def finish(self):
        """Stops it: (latencies in seconds, failed probes, peak RSS seen)."""
        self.stop.set()
        results = self.results.get(timeout=30)
        self.process.join()
        return results


def open_plain(count):
    sockets = []
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", PORT), timeout=5))
        except OSError:
            pass
    return sockets


def open_tls(count, ctx):
    sockets = []
    for _ in range(count):
        try:
            raw = socket.create_connection(("127.0.0.1", PORT), timeout=5)
            sockets.append(ctx.wrap_socket(raw, server_hostname="localhost"))
        except OSError:
            pass
    return sockets


def close_all(sockets):
    for s in sockets:
        try:
            s.close()
        except OSError:
            pass


def settle(pid, baseline_fds):
    """Waits until the server has closed its side of the flood (at most 15 s)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and fd_count(pid) > baseline_fds + 2:
        time.sleep(0.1)
    time.sleep(1)


def rss_later(pid, since):
    """RSS at each of AFTER_S seconds after `since`: whether the memory comes back while idle."""
    figures = {}
    for seconds in AFTER_S:
        time.sleep(max(0.0, since + seconds - time.monotonic()))
        figures[f"rss_{seconds}s_after_kib"] = rss_kib(pid)
    return figures


def flood(pid, opener, count, baseline_fds):
    prober = Prober(pid)
    prober.start()
    time.sleep(0.5)
    started = time.monotonic()
    sockets = opener(count)
    opened_s = time.monotonic() - started
    time.sleep(1)
    held = fd_count(pid) - baseline_fds
    times, failed, peak_kib = prober.finish()
    close_all(sockets)
    closed = time.monotonic()
    settle(pid, baseline_fds)
    return {
        "attempts": count, "opened": len(sockets), "opened_in_s": round(opened_s, 1),
        "server_connections_held": held,
        "peak_rss_kib": max(peak_kib, rss_kib(pid)),
        **probe_figures(times, failed),
        "rss_after_kib": rss_kib(pid),
        **rss_later(pid, closed),
    }


def probe_figures(times, failed):
    return {"probes": len(times) + failed, "probes_failed": failed,
            "probe_p50_ms": percentile_ms(times, 50),
            "probe_max_ms": round(max(times) * 1000, 1) if times else None}


async def stalled_mid_body(ctx, stop, opened):
    """Issue 21: a request head announcing 3 MiB and 10 bytes of body, then silence."""
    await hold_connection(ctx, stop, opened, STALL_HEAD, b"", 0)


async def large_stalled_body(ctx, stop, opened):
    """Issue 26: a request head announcing BODY_DECLARED bytes, BODY_SENT of them, then silence."""
    head = (f"POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BODY_DECLARED}\r\n\r\n").encode()
    await hold_connection(ctx, stop, opened, head + b" " * BODY_SENT, b"", 0)


async def dripping_body(ctx, stop, opened):
    """Issue 26: a request head, then one byte of body every DRIP_EVERY_S."""
    head = (f"POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY}\r\n\r\n").encode()
    await hold_connection(ctx, stop, opened, head, b" ", DRIP_EVERY_S)


async def hold_connection(ctx, stop, opened, opening, drip, every_s):
    """Over and over until `stop`: a TLS connection that sends `opening`, then `drip` every
    `every_s` (or nothing), until the server closes it. Counts each connection in `opened`."""
    import asyncio

    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                HOST, PORT, ssl=ctx, server_hostname="localhost")
            with opened.get_lock():
                opened.value += 1
            writer.write(opening)
            await writer.drain()
            if drip:
                while not stop.is_set() and not reader.at_eof() and not writer.is_closing():
                    await asyncio.sleep(every_s)
                    writer.write(drip)
                    await writer.drain()
            else:
                while not stop.is_set() and await reader.read(1024):
                    pass
            writer.close()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            await asyncio.sleep(0)


def attacker(one, connections, stop, opened):
    """`connections` coroutines `one`, until `stop`, in a process of its own (asyncio: hundreds of
    threads would measure the GIL)."""
    import asyncio

    async def run():
        # A connection the server closed while asyncio was still writing is expected here by
        # the hundreds: asyncio's report of each is noise.
        asyncio.get_running_loop().set_exception_handler(lambda _loop, _context: None)
        ctx = context()
        tasks = [asyncio.create_task(one(ctx, stop, opened)) for _ in range(connections)]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


def reset_peak_rss(pid):
    """Linux: writing 5 to clear_refs resets VmHWM, so the next peak is this attack's alone."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def attack(pid, baseline_fds, one, connections, seconds):
    """`connections` attackers `one` for `seconds`, the prober running: its figures, the
    connections opened and held, and the webhook's peak RSS (VmHWM, reset before)."""
    reset_peak_rss(pid)
    stop, opened = multiprocessing.Event(), multiprocessing.Value("q", 0)
    process = multiprocessing.Process(target=attacker, args=(one, connections, stop, opened), daemon=True)
    process.start()
    deadline = time.monotonic() + 30
    while opened.value < connections and time.monotonic() < deadline:
        time.sleep(0.1)
    prober = Prober(pid)
    prober.start()
    time.sleep(seconds)
    held = fd_count(pid) - baseline_fds
    times, failed, _ = prober.finish()
    stop.set()
    process.join(30)
    peak_kib = hwm_kib(pid)
    settle(pid, baseline_fds)
    return {"connections": connections, "seconds": seconds, "opened": opened.value,
            "server_connections_held": held, "peak_rss_kib": peak_kib,
            **probe_figures(times, failed)}


def attack_elsewhere(host, port, seconds):
    """Issue 26's two attacks at once against `host:port` for `seconds`: the cluster tier's."""
    global HOST, PORT, VERIFY
    HOST, PORT, VERIFY = host, port, False
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = multiprocessing.Event()
    running = []
    for one, connections in [(large_stalled_body, LARGE_BODIES), (dripping_body, DRIPPERS)]:
        opened = multiprocessing.Value("q", 0)
        process = multiprocessing.Process(target=attacker, args=(one, connections, stop, opened), daemon=True)
        process.start()
        running.append((one.__name__, process, opened))
    time.sleep(seconds)
    stop.set()
    for _, process, _ in running:
        process.join(30)
    print(json.dumps({name: opened.value for name, _, opened in running}))


def main():
    if sys.argv[1:2] == ["--attack"]:
        attack_elsewhere(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    count = int(os.environ.get("FLOOD_CONNECTIONS", "5000"))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    binary = os.environ.get("FLOOD_BINARY", str(RELEASE / "apiserver-proxy-pod-webhook"))
    args = [binary, "--apiserver-fqdn=foo.bar.",
            f"--cert-dir={CERTS / 'server-ecdsa'}", "--host=127.0.0.1", f"--port={PORT}"]
    server = subprocess.Popen(SERVER_CPUS + args, stderr=subprocess.PIPE, text=True)
    log_lines = []
    reader = threading.Thread(target=lambda: log_lines.extend(server.stderr), daemon=True)
    reader.start()
    ctx = context()
    try:
        request = review_request(SAMPLE.read_bytes())
        deadline = time.monotonic() + 30
        while good_request(ctx, request) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the webhook did not start: {''.join(log_lines)}")
            time.sleep(0.05)
        time.sleep(0.5)
        pid = server.pid
        baseline_fds = fd_count(pid)
        idle_kib = rss_kib(pid)
        # RSS per idle TLS connection, below the cap: what the cap multiplies.
        sockets = open_tls(BELOW_CAP, ctx)
        time.sleep(1)
        per_connection_kib = (rss_kib(pid) - idle_kib) / max(1, len(sockets))
        close_all(sockets)
        settle(pid, baseline_fds)
        quiet = [good_request(ctx, request) for _ in range(20)]
        figures = {"flood_connections": count, "idle_rss_kib": idle_kib,
                   "rss_per_idle_tls_connection_kib": round(per_connection_kib, 1),
                   "no_flood": probe_figures([t for t in quiet if t is not None], quiet.count(None)),
                   "floods": {}}
        figures["floods"]["plain TCP"] = flood(pid, open_plain, count, baseline_fds)
        figures["floods"]["idle TLS"] = flood(pid, lambda n: open_tls(n, ctx), count, baseline_fds)
        # A second flood after the memory came back: the same peak, and back again.
        figures["floods"]["idle TLS, a second time"] = flood(pid, lambda n: open_tls(n, ctx), count, baseline_fds)
        figures["peak_rss_kib"] = hwm_kib(pid)
        figures["stall"] = attack(pid, baseline_fds, stalled_mid_body, STALLED, STALL_S)
        figures["large bodies"] = attack(pid, baseline_fds, large_stalled_body, LARGE_BODIES, ATTACK_S)
        figures["drip"] = attack(pid, baseline_fds, dripping_body, DRIPPERS, ATTACK_S)
        figures["rss_after_kib"] = rss_kib(pid)
        figures["log_lines"] = len(log_lines)
    finally:
        server.terminate()
        server.wait(15)
    # Every figure starts with "flood": bench/update_readme.py --only flood finds the rows by it.
    rows = [("flood (webhook): RSS idle; RSS per idle TLS connection, below the cap",
             f"{figures['idle_rss_kib'] / 1024:.1f} MiB; {figures['rss_per_idle_tls_connection_kib']} KiB")]
    q = figures["no_flood"]
    rows.append(("flood (webhook), none: a review on a new connection, p50 / max",
                 f"{q['probe_p50_ms']} / {q['probe_max_ms']} ms; {q['probes_failed']} of {q['probes']} failed"))
    for label, f in figures["floods"].items():
        later = "; ".join(f"{f[f'rss_{s}s_after_kib'] / 1024:.1f} MiB" for s in AFTER_S)
        rows.append((f"flood (webhook), {label}: {f['attempts']} connections held idle: connections the webhook "
                     "holds; peak RSS; RSS when they have closed, "
                     + ", ".join(f"{s} s" for s in AFTER_S) + " after",
                     f"{f['server_connections_held']}; {f['peak_rss_kib'] / 1024:.1f} MiB; "
                     f"{f['rss_after_kib'] / 1024:.1f} MiB; {later}"))
        rows.append((f"flood (webhook), {label}: a review on a new connection meanwhile, p50 / max",
                     f"{f['probe_p50_ms']} / {f['probe_max_ms']} ms; {f['probes_failed']} of {f['probes']} failed"))
    rows.append(("flood (webhook): peak RSS over every flood (VmHWM); RSS at the end",
                 f"{figures['peak_rss_kib'] / 1024:.1f} MiB; {figures['rss_after_kib'] / 1024:.1f} MiB"))
    for key, label, what in [
            ("stall", "stall (issue 21)", "connections parked mid-body"),
            ("large bodies", "large bodies (issue 26)",
             f"connections each sending {BODY_SENT:,} of the {BODY_DECLARED:,} bytes of body they announce, then silent"),
            ("drip", "drip (issue 26)", f"connections each dripping a byte of body every {DRIP_EVERY_S} s")]:
        st = figures[key]
        rows.append((f"flood (webhook), {label}: {st['connections']} {what}, reopened when closed, {st['seconds']} s: "
                     "connections opened; connections the webhook holds; peak RSS (VmHWM)",
                     f"{st['opened']}; {st['server_connections_held']}; {st['peak_rss_kib'] / 1024:.1f} MiB"))
        rows.append((f"flood (webhook), {label}: a review on a new connection meanwhile, p50 / max",
                     f"{st['probe_p50_ms']} / {st['probe_max_ms']} ms; {st['probes_failed']} of {st['probes']} failed"))
    write("flood", figures, rows)


if __name__ == "__main__":
    main()
