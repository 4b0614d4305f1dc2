#!/usr/bin/env python3
"""A two-node Kubernetes v1.24 cluster in network namespaces, for the cluster tier.

    cluster.py up DIR [--images IMG ...] [--client BIN]
                                           start it; DIR/kubeconfig reaches the API server
    cluster.py down DIR                    stop everything `up` started and remove what it made
    cluster.py stop-apiserver DIR          stop the API server (its arguments kept in DIR/state.json)
    cluster.py start-apiserver DIR         start it again with them; returns once it is ready
    cluster.py restart-apiserver DIR --advertise-address ADDRESS
                                           stop it and start it advertising ADDRESS (the address
                                           change, issue 24 f); returns once it is ready

Node 1 runs etcd, the control plane, a containerd and a kubelet; node 2 a containerd and a
kubelet; both run kube-proxy (iptables mode). The data path is Gardener's: the API server
listens on node 1's own address, port 443, and advertises the proxy address, so the
`kubernetes` Service's endpoint is 10.96.0.2:443 and kube-proxy on each node sends the Service's
connections to the proxy on that node (docs/deploy.md#the-data-path). `--client BIN` builds the
data-path image (HAProxy from Debian's packages and BIN, the tier's client; testdata/cluster/
datapath/Dockerfile) and imports it with the others. Node 2's kubelet registers its Node with the startup taint (deploy's sidecar removes
it, docs/examples/startup-taint). Each node is a network namespace (joined by a veth pair) and a mount namespace of its
own (so the two kubelets do not share /var/log/pods), and a cgroup root of its own. Nothing runs
in the host's network namespace. How each piece is started, and why, is in ../shared/design.md
section 4.4 and docs/testing.md. Every name carries DIR's run prefix (`apc<pid>`), so two runs
on one machine never collide. `down` reads DIR/state.json, so it works after a failed `up` and
from another process (the test harness's drop guard).

Exit status: 0 done, 1 failed (the reason on stderr), 2 the tier cannot run here (not root, no
Kubernetes binaries, a missing tool): the harness turns 2 into a loud skip.
"""

import argparse
import base64
import hashlib
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
              "kube-proxy"]
TOOLS = ["etcd", "containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare",
         "ip", "openssl", "docker", "kubectl", "gcc", "conntrack", "iptables", "apt-get",
         "dpkg", "strip"]
CANNOT_RUN = 2
# Addresses: the veth between the nodes, each node's Pod subnet, the Service range (apart from the
# proxy address 10.96.0.2 that deploy/ uses, so no Service ever takes it).
NODE_IP = {1: "10.200.0.1", 2: "10.200.0.2"}
POD_CIDR = {1: "10.201.1.0/24", 2: "10.201.2.0/24"}
SERVICE_CIDR = "10.32.0.0/24"
# The API server's port on node 1's address; the proxy address's port too (deploy/'s --port=443).
APISERVER_PORT = 443
# The proxy addresses: deploy/'s, and the one the address-change case moves to.
PROXY_ADDRESSES = ["10.96.0.2", "10.96.0.3"]
TOKEN = "apiserver-proxy-cluster-tier-admin"
PAUSE_IMAGE = "apiserver-proxy-pause:3.9"
# HAProxy (in place of deploy/'s Envoy) and the tier's data-path client, in one image.
DATAPATH_IMAGE = "apiserver-proxy-datapath:test"
# Debian bookworm's HAProxy and the libraries it needs beyond the base image's.
HAPROXY_PACKAGES = ["haproxy", "liblua5.3-0", "libopentracing-c-wrapper0", "libopentracing1",
                    "libssl3"]
# docs/examples/startup-taint's taint: node 2 registers with it, node 1 without (the control
# plane's node, so the project's Pods land somewhere before any sidecar ran).
STARTUP_TAINT = "apiserver-proxy.networking.gardener.cloud/not-ready"


class CannotRun(Exception):
    pass


def log(message):
    print(f"cluster: {message}", file=sys.stderr, flush=True)


def run(*args, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run([str(a) for a in args], **kwargs)


def output(*args):
    return run(*args, capture_output=True, text=True).stdout


class State:
    """What `up` made, written after every step so that `down` undoes exactly that."""

    def __init__(self, directory):
        self.dir = directory
        self.path = directory / "state.json"
        if self.path.exists():
            self.data = json.loads(self.path.read_text())
        else:
            prefix = f"apc{os.getpid()}"
            self.data = {"prefix": prefix, "netns": [], "pids": [], "cgroups": [],
                         "containerd": []}

    @property
    def prefix(self):
        return self.data["prefix"]

    def add(self, key, value):
        self.data[key].append(value)
        self.save()

    def save(self):
        self.path.write_text(json.dumps(self.data, indent=1))


# --- the binaries --------------------------------------------------------------------------------

def kube_binaries():
    """Unpacks KUBE_BINARIES (default ../shared/k8s) into a cache under target/, checking the sums
    of the unpacked files against its SHA256SUMS; returns the cache directory."""
    source = Path(os.environ.get("KUBE_BINARIES", ROOT.parent / "shared" / "k8s"))
    sums_file = source / "SHA256SUMS"
    if not sums_file.exists():
        raise CannotRun(f"no Kubernetes binaries: {sums_file} is missing (set KUBE_BINARIES, "
                        "docs/testing.md)")
    sums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    key = hashlib.sha256(sums_file.read_bytes()).hexdigest()[:16]
    cache = ROOT / "target" / "cluster-bin" / key
    cache.mkdir(parents=True, exist_ok=True)
    for name in COMPONENTS:
        if name not in sums:
            raise CannotRun(f"{sums_file} names no {name}")
        target = cache / name
        if target.exists() and sha256(target) == sums[name]:
            continue
        packed, plain = source / f"{name}.xz", source / name
        partial = cache / f".{name}.{os.getpid()}"
        if packed.exists():
            with lzma.open(packed) as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
        elif plain.exists():
            shutil.copyfile(plain, partial)
        else:
            raise CannotRun(f"no {name} or {name}.xz in {source}")
        digest = sha256(partial)
        if digest != sums[name]:
            partial.unlink()
            raise SystemExit(f"cluster: {name} from {source}: SHA-256 {digest}, expected "
                             f"{sums[name]} (SHA256SUMS)")
        partial.chmod(0o755)
        partial.rename(target)
    return cache


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def datapath_image(work, client):
    """HAProxy from Debian's packages (apt-get download, unpacked with dpkg -x over the
    project's bookworm base, no maintainer scripts) and the tier's client, built each run (the client changes with
    the code; Docker's cache keeps it quick). testdata/cluster/datapath/Dockerfile says why each
    piece is there."""
    context = work / "datapath-image"
    debs = ROOT / "target" / "cluster-haproxy"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob("haproxy_*.deb")):
        log("downloading HAProxy's packages (apt-get download, once per machine)")
        run("apt-get", "download", *HAPROXY_PACKAGES, cwd=debs, capture_output=True)
    shutil.rmtree(context, ignore_errors=True)
    rootfs = context / "rootfs"
    rootfs.mkdir(parents=True)
    for deb in debs.glob("*.deb"):
        run("dpkg", "-x", deb, rootfs)
    # Only a systemd unit lives there; copied, a /lib directory would replace the base's
    # merged-/usr symlink.
    shutil.rmtree(rootfs / "lib", ignore_errors=True)
    run("strip", "-o", context / "datapath-client", client)
    for name in ("Dockerfile", "haproxy-drain"):
        shutil.copyfile(ROOT / "testdata" / "cluster" / "datapath" / name, context / name)
    (context / "datapath-client").chmod(0o755)
    (context / "haproxy-drain").chmod(0o755)
    run("docker", "build", "--quiet", "--network", "none", "-t", DATAPATH_IMAGE, context,
        stdout=subprocess.DEVNULL)


def pause_image(work):
    """A pause image (pause() until a signal, static, FROM scratch), since no registry is
    reachable; built once per machine, it is the CRI sandbox image."""
    if run("docker", "image", "inspect", PAUSE_IMAGE, capture_output=True,
           check=False).returncode == 0:
        return
    context = work / "pause-image"
    context.mkdir(parents=True, exist_ok=True)
    (context / "pause.c").write_text(
        "#include <signal.h>\n#include <stdlib.h>\n#include <unistd.h>\n"
        "static void stop(int s) { (void)s; exit(0); }\n"
        "int main(void) { signal(SIGTERM, stop); signal(SIGINT, stop);"
        " for (;;) pause(); }\n")
    run("gcc", "-static", "-O2", "-o", context / "pause", context / "pause.c")
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n')
    run("docker", "build", "--quiet", "--network", "none", "-t", PAUSE_IMAGE, context,
        stdout=subprocess.DEVNULL)


# --- processes in a node -------------------------------------------------------------------------

def start(state, node, name, args, mount_ns=None, mode="wb"):
    """Starts a component in the node's network namespace (and mount namespace), its output in
    DIR/logs/NAME.log. nsenter, not `ip netns exec`, which remounts /sys and hides the cgroup
    mounts from the kubelet and runc."""
    logs = state.dir / "logs"
    logs.mkdir(exist_ok=True)
    enter = ["nsenter", f"--net=/var/run/netns/{state.prefix}-n{node}"]
    if mount_ns:
        enter.append(f"--mount=/proc/{mount_ns}/ns/mnt")
    with open(logs / f"{name}.log", mode) as out:
        process = subprocess.Popen(enter + [str(a) for a in args], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    state.add("pids", {"name": name, "pid": process.pid, "node": node})
    return process


def in_node(state, node, *args, **kwargs):
    return run("nsenter", f"--net=/var/run/netns/{state.prefix}-n{node}", *args, **kwargs)


def wait_for(what, check, seconds, log_file=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log_file and log_file.exists():
        tail = "\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
    raise SystemExit(f"cluster: {what} did not happen within {seconds} s{tail}")


# --- bring-up ------------------------------------------------------------------------------------

def networks(state):
    prefix = state.prefix
    for node in (1, 2):
        run("ip", "netns", "add", f"{prefix}-n{node}")
        state.add("netns", f"{prefix}-n{node}")
    # The nodes' link: eth0 in each namespace, with a default route so the kubelets report an
    # InternalIP, and each node routing the other's Pod subnet (the API server calls webhook
    # replicas on node 2).
    run("ip", "-n", f"{prefix}-n1", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
        "netns", f"{prefix}-n2")
    for node, other in ((1, 2), (2, 1)):
        ns = ["ip", "-n", f"{prefix}-n{node}"]
        run(*ns, "link", "set", "lo", "up")
        run(*ns, "addr", "add", f"{NODE_IP[node]}/24", "dev", "eth0")
        run(*ns, "link", "set", "eth0", "up")
        run(*ns, "route", "add", "default", "dev", "eth0")
        run(*ns, "route", "add", POD_CIDR[other], "via", NODE_IP[other])
        in_node(state, node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # The link the sidecar keeps its address on: this kernel has no dummy type, so the tier
        # makes `apiserver-proxy` (a veth, without the sidecar's alias) as the node's image
        # would have it; deploy/ is applied unchanged in this respect.
        run(*ns, "link", "add", "apiserver-proxy", "type", "veth", "peer", "name", "apc-peer")
        run(*ns, "link", "set", "apc-peer", "up")
        # A node that lost the proxy address must not forward the connection to the other node
        # (its default route), whose proxy would answer and hide the gap: on a real node the
        # address leads nowhere else, and a packet sent off the node to it is dropped without an
        # answer (a cloud network sends no ICMP). `blackhole` does that; `unreachable` would
        # answer a SYN in a repair's gap with an ICMP error, which fails the connect at once
        # where a real node's client retransmits it (docs/testing.md). The local table still
        # wins while the address exists.
        for address in PROXY_ADDRESSES:
            run(*ns, "route", "add", "blackhole", f"{address}/32")
        # A closing listener hands the connections in its accept queue to the other listeners
        # of its SO_REUSEPORT group (Linux >= 5.14): the surge rollout's old proxy
        # (docs/deploy.md#rollouts). A node setting, as a node image would have it.
        in_node(state, node, "sysctl", "-qw", "net.ipv4.tcp_migrate_req=1")


def certificates(state):
    """The cluster's CA and the API server's serving certificate, and the service-account key."""
    pki = state.dir / "pki"
    pki.mkdir(exist_ok=True)
    openssl = ["openssl"]
    run(*openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", pki / "ca.key", "-out", pki / "ca.crt", "-days", "2",
        "-subj", "/CN=apiserver-proxy cluster tier CA", capture_output=True)
    # The proxy addresses too: the proxy passes TLS through, so a client that dials an address
    # directly checks the API server's certificate against it.
    sans = f"IP:{NODE_IP[1]},IP:127.0.0.1,IP:10.32.0.1," + \
        ",".join(f"IP:{a}" for a in PROXY_ADDRESSES) + \
        ",DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost"
    issue(pki, "apiserver", "/CN=kube-apiserver", sans)
    run(*openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
        "-out", pki / "sa.key", capture_output=True)
    run(*openssl, "pkey", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub",
        capture_output=True)


def issue(pki, name, subject, sans):
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", pki / f"{name}.key", "-out", pki / f"{name}.csr", "-subj", subject,
        capture_output=True)
    (pki / f"{name}.ext").write_text(f"subjectAltName={sans}\n")
    run("openssl", "x509", "-req", "-in", pki / f"{name}.csr", "-CA", pki / "ca.crt",
        "-CAkey", pki / "ca.key", "-CAcreateserial", "-out", pki / f"{name}.crt", "-days", "2",
        "-extfile", pki / f"{name}.ext", capture_output=True)


def kubeconfig(state, server):
    ca = base64.b64encode((state.dir / "pki" / "ca.crt").read_bytes()).decode()
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "tier",
        "clusters": [{"name": "tier", "cluster": {"server": server,
                                                  "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": {"token": TOKEN}}],
        "contexts": [{"name": "tier", "context": {"cluster": "tier", "user": "admin"}}],
    })


def control_plane(state, binaries):
    d = state.dir
    pki = d / "pki"
    # The admin token, in system:masters: the test harness, the controllers and the kubelets.
    (d / "tokens.csv").write_text(f'{TOKEN},admin,admin,"system:masters"\n')
    # For every process of both nodes, and for the harness (it enters node 1): the API server
    # listens on node 1's address only.
    (d / "kubeconfig").write_text(kubeconfig(state, f"https://{NODE_IP[1]}:{APISERVER_PORT}"))
    start(state, 1, "etcd", ["etcd", "--data-dir", d / "etcd", "--name", "tier",
                             "--listen-client-urls", "http://127.0.0.1:2379",
                             "--advertise-client-urls", "http://127.0.0.1:2379",
                             "--listen-peer-urls", "http://127.0.0.1:2380",
                             "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                             "--initial-cluster", "tier=http://127.0.0.1:2380",
                             "--log-level", "warn"])
    start(state, 1, "kube-apiserver", [
        binaries / "kube-apiserver",
        "--etcd-servers=http://127.0.0.1:2379",
        # Node 1's own address, so that node 1's proxy can listen on the proxy address, same
        # port; the proxy address advertised, so it is the `kubernetes` Service's endpoint.
        f"--bind-address={NODE_IP[1]}", f"--secure-port={APISERVER_PORT}",
        f"--advertise-address={PROXY_ADDRESSES[0]}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={d / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The API server calls a webhook's endpoints directly rather than through its Service:
        # the webhook cases measured it that way before kube-proxy ran here.
        "--enable-aggregator-routing=true",
        # The nodes' names do not resolve here: reach the kubelets (logs, exec) by their address.
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true", "--profiling=false", "--v=0"])
    api_ready(state)
    start(state, 1, "kube-controller-manager", [
        binaries / "kube-controller-manager", f"--kubeconfig={d / 'kubeconfig'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}", "--leader-elect=false",
        "--use-service-account-credentials=false", "--profiling=false",
        # Quick to notice a Ready node (the not-ready taint comes off sooner).
        "--node-monitor-period=2s", "--v=0"])
    start(state, 1, "kube-scheduler", [
        binaries / "kube-scheduler", f"--kubeconfig={d / 'kubeconfig'}", "--leader-elect=false",
        "--profiling=false", "--v=0"])


def api_ready(state):
    kubectl = ["kubectl", f"--kubeconfig={state.dir / 'kubeconfig'}"]

    def ready():
        return in_node(state, 1, *kubectl, "get", "--raw", "/readyz", capture_output=True,
                       check=False).returncode == 0
    wait_for("the API server's /readyz", ready, 60, state.dir / "logs" / "kube-apiserver.log")


def stop_apiserver(directory):
    """Stops the API server (the tier's outage case); its command line stays in the state."""
    state = State(directory)
    entry = next(e for e in state.data["pids"] if e["name"] == "kube-apiserver")
    # nsenter exec'd the API server: this pid's command line is the server's own.
    args = Path(f"/proc/{entry['pid']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    state.data["apiserver_args"] = [a.decode() for a in args]
    stop(entry["pid"])
    state.data["pids"].remove(entry)
    state.save()


def start_apiserver(directory):
    state = State(directory)
    start(state, 1, "kube-apiserver", state.data.pop("apiserver_args"), mode="ab")
    api_ready(state)


def restart_apiserver(directory, advertise):
    """The API server stopped and started again advertising `advertise`: the `kubernetes`
    Service's endpoint moves there, as an operator's restart with a new --advertise-address
    moves it (the address-change case)."""
    stop_apiserver(directory)
    state = State(directory)
    state.data["apiserver_args"] = [
        f"--advertise-address={advertise}" if a.startswith("--advertise-address=") else a
        for a in state.data["apiserver_args"]]
    state.save()
    start_apiserver(directory)


def node(state, number, binaries, images):
    d = state.dir / f"n{number}"
    prefix = state.prefix
    for sub in ("pod-logs", "container-logs", "manifests", "kubelet", "cni"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    # A mount namespace per node: the kubelet's /var/log/pods and /var/log/containers are the
    # node's own (two kubelets sharing them delete each other's Pod logs), and every mount the
    # node's containerd and kubelet make goes away with the namespace.
    for shared in ("/var/log/pods", "/var/log/containers"):
        Path(shared).mkdir(parents=True, exist_ok=True)
    holder = start(state, number, f"mount-holder-n{number}", [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        f'mount --bind "{d / "pod-logs"}" /var/log/pods && '
        f'mount --bind "{d / "container-logs"}" /var/log/containers && exec sleep infinity'])
    for _ in range(100):
        if Path("/proc", str(holder.pid), "ns", "mnt").exists() and \
                os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt") \
                and holder_ready(holder.pid):
            break
        time.sleep(0.05)
    else:
        raise SystemExit(f"cluster: node {number}'s mount namespace did not come up")
    socket = d / "containerd.sock"
    (d / "cni" / "10-tier.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": f"{prefix}-n{number}",
        "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
                     "ipam": {"type": "host-local", "dataDir": str(d / "ipam"),
                              "ranges": [[{"subnet": POD_CIDR[number]}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}}]}))
    (d / "containerd.toml").write_text(f"""version = 2
root = "{d / 'containerd-root'}"
state = "{d / 'containerd-state'}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: the sandbox's oom_score_adj of -998 would fail.
  restrict_oom_score_adj = true
  # The Pods' network namespaces under this node's state, not the host's /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d / 'cni'}"
""")
    start(state, number, f"containerd-n{number}",
          ["containerd", "--config", d / "containerd.toml"], mount_ns=holder.pid)
    state.add("containerd", str(socket))
    wait_for(f"node {number}'s containerd", lambda: run(
        "ctr", "-a", socket, "version", capture_output=True, check=False).returncode == 0,
        30, state.dir / "logs" / f"containerd-n{number}.log")
    load_images(socket, images)
    cgroup = f"{prefix}-n{number}"
    make_cgroup_root(state, cgroup)
    (d / "kubelet.yaml").write_text(json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{cgroup}", "failSwapOn": False,
        "staticPodPath": str(d / "manifests"), "enforceNodeAllocatable": [],
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "readOnlyPort": 0,
        # Short periods: a rotated Secret reaches the webhook's volume within seconds.
        "syncFrequency": "5s", "fileCheckFrequency": "5s",
        "nodeStatusUpdateFrequency": "4s",
        # This machine's disk and memory are shared: no eviction, no image GC.
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "serializeImagePulls": False,
        **({"registerWithTaints": [{"key": STARTUP_TAINT, "effect": "NoSchedule"}]}
           if number == 2 else {}),
    }))
    start(state, number, f"kubelet-n{number}", [
        binaries / "kubelet", f"--config={d / 'kubelet.yaml'}",
        f"--kubeconfig={state.dir / 'kubeconfig'}",
        "--container-runtime=remote", f"--container-runtime-endpoint=unix://{socket}",
        f"--root-dir={d / 'kubelet'}", f"--hostname-override=node{number}",
        f"--node-ip={NODE_IP[number]}", f"--pod-infra-container-image={PAUSE_IMAGE}",
        "--v=0"], mount_ns=holder.pid)
    kube_proxy(state, number, binaries)


def kube_proxy(state, number, binaries):
    """kube-proxy in iptables mode, as Gardener's shoots run it. No conntrack sysctls: those
    are the host's (and a node's image's) business, not a namespace's."""
    config = state.dir / f"n{number}" / "kube-proxy.yaml"
    config.write_text(json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(state.dir / "kubeconfig")},
        "hostnameOverride": f"node{number}", "mode": "iptables",
        "clusterCIDR": "10.201.0.0/16",
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
        "metricsBindAddress": "127.0.0.1:10249", "healthzBindAddress": "127.0.0.1:10256",
    }))
    start(state, number, f"kube-proxy-n{number}",
          [binaries / "kube-proxy", f"--config={config}", "--v=0"])


def service_rules(state):
    """Both nodes' kube-proxy has written the `kubernetes` Service's rules."""
    def written(node):
        rules = in_node(state, node, "iptables-save", "-t", "nat", capture_output=True,
                        text=True, check=False).stdout
        return "-d 10.32.0.1/32" in rules and f"{PROXY_ADDRESSES[0]}:{APISERVER_PORT}" in rules
    return written(1) and written(2)


def holder_ready(pid):
    try:
        mounts = Path(f"/proc/{pid}/mountinfo").read_text()
    except OSError:
        return False
    return " /var/log/containers " in mounts


def load_images(socket, images):
    save = subprocess.Popen(["docker", "save", *images, PAUSE_IMAGE], stdout=subprocess.PIPE)
    run("ctr", "-a", socket, "-n", "k8s.io", "images", "import", "--snapshotter", "native", "-",
        stdin=save.stdout, stdout=subprocess.DEVNULL)
    if save.wait() != 0:
        raise SystemExit(f"cluster: docker save {' '.join(images)} failed")


def make_cgroup_root(state, name):
    """The kubelet's cgroupRoot in every v1 hierarchy; cpuset needs its cpus and mems copied."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink():
            continue
        path = hierarchy / name
        # The kubelet makes its own in the v2 `unified` hierarchy; `down` removes that one too.
        state.add("cgroups", str(path))
        if hierarchy.name == "unified":
            continue
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            for key in ("cpuset.cpus", "cpuset.mems"):
                (path / key).write_text((hierarchy / key).read_text())


def nodes_ready(state):
    kubectl = ["kubectl", f"--kubeconfig={state.dir / 'kubeconfig'}"]
    out = in_node(state, 1, *kubectl, "get", "nodes", "-o", "json", capture_output=True,
                  text=True, check=False).stdout
    try:
        items = json.loads(out)["items"]
    except (ValueError, KeyError):
        return False
    ready = 0
    for item in items:
        conditions = {c["type"]: c["status"] for c in item["status"].get("conditions", [])}
        taints = [t["key"] for t in item["spec"].get("taints", [])]
        if conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
            ready += 1
    return ready == 2


def up(directory, images, client):
    if os.geteuid() != 0:
        raise CannotRun("needs root (network and mount namespaces, cgroups)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("/usr/lib/cni/bridge (containernetworking-plugins)")
    if missing:
        raise CannotRun(f"missing {', '.join(missing)}: run scripts/deps.sh")
    if run("docker", "info", capture_output=True, check=False).returncode != 0:
        raise CannotRun("no Docker engine answers (scripts/docker-engine.sh): the images are "
                        "imported from it")
    for image in images:
        if run("docker", "image", "inspect", image, capture_output=True,
               check=False).returncode != 0:
            raise CannotRun(f"no image {image}: run make docker-images")
    binaries = kube_binaries()
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    state = State(directory)
    pause_image(directory)
    if client:
        datapath_image(directory, client)
        images = [*images, DATAPATH_IMAGE]
    networks(state)
    certificates(state)
    control_plane(state, binaries)
    for number in (1, 2):
        node(state, number, binaries, images)
    wait_for("both nodes Ready and untainted", lambda: nodes_ready(state), 120,
             directory / "logs" / "kubelet-n2.log")
    wait_for("kube-proxy's rules for the kubernetes Service on both nodes",
             lambda: service_rules(state), 60, directory / "logs" / "kube-proxy-n2.log")
    seconds = time.monotonic() - started
    state.data["start_seconds"] = round(seconds, 1)
    state.save()
    log(f"two nodes Ready in {seconds:.1f} s ({directory})")


# --- teardown ------------------------------------------------------------------------------------

def down(directory):
    state_file = directory / "state.json"
    if not state_file.exists():
        return
    state = State(directory)
    pids = state.data["pids"]
    # The kubelets first (they would restart containers), then every container through its
    # containerd, then the rest; the scheduler ignores a first SIGTERM, so SIGKILL after a grace.
    for entry in pids:
        if entry["name"].startswith("kubelet"):
            stop(entry["pid"])
    for socket in state.data["containerd"]:
        kill_containers(socket)
    for entry in reversed(pids):
        stop(entry["pid"])
    # Shims outlive containerd (their own sessions); any left are ours by their socket address.
    for socket in state.data["containerd"]:
        for pid in shims_of(socket):
            stop(pid)
    for path in sorted(state.data["cgroups"], key=len, reverse=True):
        remove_cgroup(Path(path))
    for name in state.data["netns"]:
        run("ip", "netns", "delete", name, check=False, capture_output=True)
    # A case's own namespaces, named after the run's (the no-RBAC case's), when the harness was
    # stopped before its case removed them.
    for line in output("ip", "netns", "list").splitlines():
        if line.startswith(f"{state.prefix}-"):
            run("ip", "netns", "delete", line.split()[0], check=False, capture_output=True)
    unmount_under(directory)
    state.data.update({"pids": [], "cgroups": [], "netns": [], "containerd": []})
    state.save()
    prune(directory)


def prune(directory):
    """Everything but the logs and the state goes (about 130 MB a run: the images unpacked per
    node), once nothing is mounted under the directory any more."""
    prefix = str(directory.resolve()) + "/"
    if any(line.split()[4].startswith(prefix)
           for line in Path("/proc/self/mountinfo").read_text().splitlines()):
        log(f"mounts left under {directory}: not pruned")
        return
    for entry in directory.iterdir():
        if entry.name in ("logs", "state.json"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def stop(pid, grace=5.0):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while alive(pid):
        time.sleep(0.05)


def alive(pid):
    try:
        # Our own children are reaped here; others' exit shows as a missing /proc entry.
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"


def kill_containers(socket):
    ctr = ["ctr", "-a", socket, "-n", "k8s.io"]
    listing = run(*ctr, "tasks", "list", "-q", capture_output=True, text=True, check=False)
    for task in listing.stdout.split():
        run(*ctr, "tasks", "kill", "-s", "SIGKILL", task, capture_output=True, check=False)


def shims_of(socket):
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and \
                socket.encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def remove_cgroup(path):
    if not path.exists():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True):
        for _ in range(50):
            try:
                child.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    try:
        path.rmdir()
    except OSError as error:
        log(f"cannot remove the cgroup {path}: {error}")


def unmount_under(directory):
    """Mounts under DIR left in the host's namespace (none when every holder is gone, as the
    nodes' mounts live in their own namespaces): unmounted, deepest first."""
    prefix = str(directory.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        run("umount", "-l", mount, check=False, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "stop-apiserver", "start-apiserver",
                                           "restart-apiserver"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--client", type=Path)
    parser.add_argument("--advertise-address", choices=PROXY_ADDRESSES)
    args = parser.parse_args()
    directory = args.dir.resolve()
    try:
        if args.action == "up":
            up(directory, args.images, args.client)
        elif args.action == "down":
            down(directory)
        elif args.action == "stop-apiserver":
            stop_apiserver(directory)
        elif args.action == "start-apiserver":
            start_apiserver(directory)
        elif args.advertise_address is None:
            parser.error("restart-apiserver needs --advertise-address (one of "
                         f"{', '.join(PROXY_ADDRESSES)})")
        else:
            restart_apiserver(directory, args.advertise_address)
    except CannotRun as reason:
        print(f"cluster: cannot run here: {reason}", file=sys.stderr)
        sys.exit(CANNOT_RUN)
    except subprocess.CalledProcessError as error:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) \
            else (error.stderr or "")
        print(f"cluster: {' '.join(map(str, error.cmd))} failed (exit {error.returncode}) "
              f"{stderr.strip()}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
