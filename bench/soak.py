"""The webhook soak: SOAK_SECONDS (default 600) of steady load on 127.0.0.1, good reviews mixed with
bad requests (malformed JSON, a wrong Content-Type, a wrong path), the serving pair rotated every
30 s, and a trickle of new TLS connections that see each rotation. Reports failed good requests,
RSS at start, peak and end, and open file descriptors at start and end. Run once, by hand or
`make soak`; not in CI.

Usage: python3 bench/soak.py
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import RELEASE, ROOT, fd_count, hwm_kib, rss_kib, write

SAMPLE = ROOT / "testdata" / "admission" / "pod-create-v1.json"
CERTS = ROOT / "testdata" / "certs"
PORT = 19445
URL = f"https://127.0.0.1:{PORT}/webhook/pod-apiserver-env"
ROTATE_EVERY = 30

# One connection per wrk thread, so `last` is the kind of the request in flight on it.
MIXED = """
local good = io.open("{sample}", "rb"):read("*a")
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) n = 0; last = "good"; good_ok = 0; good_failed = 0; bad = 0; bad_5xx = 0 end
function request()
  n = n + 1
  local pick = n % 8
  if pick == 5 then last = "bad"; return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, "{{not json")
  elseif pick == 6 then last = "bad"; return wrk.format("POST", nil, {{["Content-Type"] = "text/plain"}}, good)
  elseif pick == 7 then last = "bad"; return wrk.format("POST", "/nowhere", {{["Content-Type"] = "application/json"}}, good)
  end
  last = "good"
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, good)
end
function response(status, headers, body)
  if last == "good" then
    if status == 200 and string.find(body, '"allowed":true', 1, true) then good_ok = good_ok + 1 else good_failed = good_failed + 1 end
  else
    bad = bad + 1
    if status >= 500 then bad_5xx = bad_5xx + 1 end
  end
end
function done(summary, latency, requests)
  local t = {{good_ok = 0, good_failed = 0, bad = 0, bad_5xx = 0}}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", t.good_ok, t.good_failed, t.bad, t.bad_5xx,
    e.connect + e.read + e.write + e.timeout, latency:percentile(99)))
end
"""


def rotate(dir_, pair):
    for name in ("tls.crt", "tls.key"):
        shutil.copy(CERTS / pair / name, dir_ / f".{name}.new")
    # The key first, then the certificate: between the two renames the pair does not match, and
    # the webhook must keep serving the last good one.
    for name in ("tls.key", "tls.crt"):
        os.rename(dir_ / f".{name}.new", dir_ / name)


def main():
    seconds = int(os.environ.get("SOAK_SECONDS", "600"))
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        certs = work / "certs"
        certs.mkdir()
        rotate(certs, "server-ecdsa")
        log = open(work / "webhook.log", "w")
        webhook = subprocess.Popen([str(RELEASE / "apiserver-proxy-pod-webhook"), "--apiserver-fqdn=foo.bar.",
                                    f"--cert-dir={certs}", "--host=127.0.0.1", f"--port={PORT}"], stderr=log)
        time.sleep(1)
        start = {"rss_kib": rss_kib(webhook.pid), "fds": fd_count(webhook.pid)}
        script = work / "mixed.lua"
        script.write_text(MIXED.format(sample=SAMPLE))
        load = subprocess.Popen(["wrk", "-t2", "-c2", f"-d{seconds}s", "-s", str(script), URL],
                                stdout=subprocess.PIPE, text=True)
        handshakes = subprocess.Popen(["hey", "-z", f"{seconds}s", "-c", "1", "-q", "20", "-disable-keepalive",
                                       "-host", "localhost", "-m", "POST", "-T", "application/json",
                                       "-D", str(SAMPLE), URL], stdout=subprocess.PIPE, text=True)
        rotations, pairs = 0, ["server-rsa-pkcs8", "server-ecdsa"]
        ends = time.monotonic() + seconds
        while time.monotonic() < ends - ROTATE_EVERY / 2:
            time.sleep(ROTATE_EVERY)
            rotate(certs, pairs[rotations % 2])
            rotations += 1
        out = load.communicate()[0]
        hey = handshakes.communicate()[0]
        time.sleep(1)
        end = {"rss_kib": rss_kib(webhook.pid), "fds": fd_count(webhook.pid), "peak_rss_kib": hwm_kib(webhook.pid)}
        webhook.terminate()
        webhook.wait(15)
        log.close()
        reloads = (work / "webhook.log").read_text().count("reloaded the serving certificate")
    fields = [int(f) for f in next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]]
    good_ok, good_failed, bad, bad_5xx, socket_errors, p99_us = fields
    new_conns = [line.split() for line in hey.splitlines() if "responses" in line and line.strip().startswith("[")]
    figures = {"seconds": seconds, "good_ok": good_ok, "good_failed": good_failed, "bad": bad, "bad_5xx": bad_5xx,
               "socket_errors": socket_errors, "p99_ms": p99_us / 1000, "rotations": rotations, "reloads": reloads,
               "new_connections_by_status": {s[0]: int(s[1]) for s in new_conns}, "start": start, "end": end}
    write("soak", figures, [
        (f"soak: webhook {seconds} s, good + bad requests on 2 keep-alive connections, pair rotated every {ROTATE_EVERY} s",
         f"{good_ok} good answered, {good_failed} good failed, {bad} bad refused ({bad_5xx} 5xx), {socket_errors} socket errors;"
         f" {rotations} rotations, {reloads} reloads; new connections by status {figures['new_connections_by_status']}"),
        ("soak: webhook RSS start / peak / end; open fds start / end",
         f"{start['rss_kib'] / 1024:.1f} / {end['peak_rss_kib'] / 1024:.1f} / {end['rss_kib'] / 1024:.1f} MiB; {start['fds']} / {end['fds']}"),
    ])


if __name__ == "__main__":
    main()
