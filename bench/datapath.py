"""The data path while the address is deleted: how many of a Pod's requests fail.

Two throwaway namespaces joined by a veth pair: a "node" with the sidecar (release binary)
keeping 10.96.0.2 on lo and a stand-in proxy (this script, `--serve`: HTTP, one answer per
connection) bound to 10.96.0.2:443, and a "Pod" routed to the node that sends a request every
20 ms, each on a new connection (this script, `--client`). Meanwhile the address is deleted
BENCH_DELETIONS (20) times, 1.5 s apart. The node has `unreachable 10.96.0.2/32` in its main
table, so while the address is missing nothing but its repair can make a request succeed (the
local table, where the address lives, is looked up first). Traffic stays in the two namespaces.

Usage: python3 bench/datapath.py  (root; expects target/release/apiserver-proxy-sidecar)
Env: BENCH_DELETIONS (default 20), BENCH_DELETION_GAP (seconds, default 1.5).
"""

import json
import os
import socket
import subprocess
import sys
import time

from common import RELEASE, Netns, percentile_ms, write

ADDRESS = "10.96.0.2"
PORT = 443
SIDECAR = str(RELEASE / "apiserver-proxy-sidecar")
NODE_SIDE, POD_SIDE = "10.244.0.1", "10.244.0.2"
PERIOD = 0.02
# A request that takes longer counts as failed: well above a retransmitted SYN (1 s).
REQUEST_TIMEOUT = 3.0
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
IP_FREEBIND = 15
SELF = os.path.abspath(__file__)


def serve():
    """The stand-in proxy: bound to the address even while it is missing (IP_FREEBIND, as a
    proxy that starts before the address does), answers every connection once."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    listener.bind((ADDRESS, PORT))
    listener.listen(128)
    while True:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(REQUEST_TIMEOUT)
            try:
                connection.recv(4096)
                connection.sendall(ANSWER)
            except OSError:
                pass


def request():
    """One request on a new connection: its latency in seconds, or None when it failed."""
    started = time.monotonic()
    try:
        with socket.create_connection((ADDRESS, PORT), timeout=REQUEST_TIMEOUT) as connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: kubernetes\r\n\r\n")
            answer = connection.recv(4096)
    except OSError:
        return None
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None


def client(seconds):
    """A request every PERIOD for `seconds`, one at a time; prints the results as JSON."""
    latencies, failures, errors = [], 0, {}
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while next_at < end:
        latency = request()
        if latency is None:
            failures += 1
        else:
            latencies.append(latency)
        next_at = max(next_at + PERIOD, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))
    print(json.dumps({"latencies": latencies, "failures": failures}))


def present(node):
    return f"{ADDRESS}/32" in node.run("ip addr show dev lo").stdout


def wait_until(what, check, limit=10.0):
    end = time.monotonic() + limit
    while not check():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def answers(pod):
    return pod.run(f"{sys.executable} {SELF} --probe", check=False).returncode == 0


def main():
    deletions = int(os.environ.get("BENCH_DELETIONS", "20"))
    gap = float(os.environ.get("BENCH_DELETION_GAP", "1.5"))
    with Netns("bench-node") as node, Netns("bench-pod") as pod:
        node.run(f"ip link add veth-node type veth peer name veth-pod netns {pod.name}")
        node.run(f"ip addr add {NODE_SIDE}/24 dev veth-node")
        node.run("ip link set veth-node up")
        pod.run(f"ip addr add {POD_SIDE}/24 dev veth-pod")
        pod.run("ip link set veth-pod up")
        pod.run(f"ip route add default via {NODE_SIDE}")
        node.run(f"ip route add unreachable {ADDRESS}/32")
        node.popen([sys.executable, SELF, "--serve"])
        sidecar = node.popen([SIDECAR, f"--ip-address={ADDRESS}"], stderr=subprocess.DEVNULL)
        wait_until("the address", lambda: present(node))
        wait_until("the stand-in proxy to answer the Pod", lambda: answers(pod))
        seconds = deletions * gap + 1.0
        traffic = pod.popen([sys.executable, SELF, "--client", str(seconds)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        for _ in range(deletions):
            node.run(f"ip addr del {ADDRESS}/32 dev lo")
            wait_until("the repair", lambda: present(node))
            time.sleep(gap)
        result = json.loads(traffic.communicate(timeout=seconds + 30)[0])
        sidecar.terminate()
        sidecar.wait(10)
    latencies, failed = result["latencies"], result["failures"]
    total = len(latencies) + failed
    worst = round(max(latencies) * 1000, 1) if latencies else None
    figures = {
        "deletions": deletions,
        "gap_s": gap,
        "requests": total,
        "failed": failed,
        "latency_p50_ms": percentile_ms(latencies, 50),
        "latency_p99_ms": percentile_ms(latencies, 99),
        "latency_max_ms": worst,
    }
    write("datapath", figures, [
        (f"data path: a Pod's requests every 20 ms, each on a new connection, to a stand-in proxy on {ADDRESS}:{PORT}"
         f" while the address is deleted {deletions} times {gap} s apart (sidecar, default `--sync-interval`):"
         " requests; failed; p50 / p99 / worst latency",
         f"{total}; {failed}; {figures['latency_p50_ms']} / {figures['latency_p99_ms']} / {worst} ms"),
    ])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve()
    elif sys.argv[1:2] == ["--client"]:
        client(float(sys.argv[2]))
    elif sys.argv[1:2] == ["--probe"]:
        sys.exit(0 if request() is not None else 1)
    else:
        main()
