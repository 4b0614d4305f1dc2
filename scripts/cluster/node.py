#!/usr/bin/env python3
"""What the sidecar left in a node's network namespace, read over netlink; run it inside the node
(`nsenter --net=/var/run/netns/NODE`). iproute2 6.1 cannot show an address's protocol, so the
ownership mark (IFA_PROTO 97) is read here from a raw RTM_GETADDR dump.

    node.py state            JSON: {"marked": ["10.96.0.2/32 on apiserver-proxy"],
                                    "aliased": ["apiserver-proxy"], "rules": ["-A ...", ...]}
    node.py sample ADDRESS   checks every 10 ms that ADDRESS is on some link, until stdin closes;
                             then prints JSON {"samples": N, "missing": M}
"""

import ipaddress
import json
import re
import select
import socket
import struct
import subprocess
import sys
import time

RTM_GETLINK, RTM_GETADDR = 18, 22
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
NLMSG_DONE, NLMSG_ERROR = 3, 2
IFA_ADDRESS, IFA_LOCAL, IFA_PROTO = 1, 2, 11
IFLA_IFNAME, IFLA_IFALIAS = 3, 20
# The sidecar's address protocol and link alias (docs/architecture.md, ownership marks).
OUR_PROTOCOL = 97
OUR_ALIAS = "apiserver-proxy"
OUR_COMMENT = re.compile(r'--comment "?apiserver-proxy"?(\s|$)')


def dump(message_type, header):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.sendto(struct.pack("=IHHII", 16 + len(header), message_type,
                                NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + header, (0, 0))
        messages = []
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset < len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == NLMSG_DONE:
                    return messages
                if kind == NLMSG_ERROR:
                    raise OSError("netlink dump failed")
                messages.append(data[offset + 16:offset + length])
                offset += (length + 3) & ~3
    finally:
        sock.close()


def attributes(data, offset):
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        yield kind & 0x3FFF, data[offset + 4:offset + length]
        offset += (length + 3) & ~3


def links():
    """{index: (name, alias)}"""
    result = {}
    for body in dump(RTM_GETLINK, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)):
        index = struct.unpack_from("=i", body, 4)[0]
        attrs = dict(attributes(body, 16))
        name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
        alias = attrs.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode()
        result[index] = (name, alias)
    return result


def addresses():
    """[(address/prefix, link index, protocol or None)]"""
    result = []
    for body in dump(RTM_GETADDR, struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)):
        family, prefix, _, _, index = struct.unpack_from("=BBBBI", body, 0)
        attrs = dict(attributes(body, 8))
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is None:
            continue
        address = ipaddress.ip_address(raw)
        protocol = attrs[IFA_PROTO][0] if IFA_PROTO in attrs else None
        result.append((f"{address}/{prefix}", index, protocol))
    return result


def rules():
    found = []
    for save in ("iptables-save", "ip6tables-save", "iptables-legacy-save",
                 "ip6tables-legacy-save"):
        try:
            out = subprocess.run([save], capture_output=True, text=True, check=False).stdout
        except FileNotFoundError:
            continue
        # Exactly our comment: kube-proxy's rules name Services such as
        # kube-system/apiserver-proxy-pod-webhook in theirs.
        found += [f"{save}: {line}" for line in out.splitlines() if OUR_COMMENT.search(line)]
    return found


def state():
    names = links()
    marked = [f"{address} on {names.get(index, ('?',))[0]}"
              for address, index, protocol in addresses() if protocol == OUR_PROTOCOL]
    aliased = [name for name, alias in names.values() if alias == OUR_ALIAS]
    print(json.dumps({"marked": marked, "aliased": aliased, "rules": rules()}))


def sample(address):
    """Samples on a 10 ms grid (a late sample does not shift the next ones); reports the count,
    the misses and the longest interval between two samples, which the load on the machine
    stretches."""
    samples = missing = 0
    longest = 0.0
    start = last = time.monotonic()
    while True:
        present = any(a.split("/")[0] == address for a, _, _ in addresses())
        now = time.monotonic()
        longest = max(longest, now - last)
        last = now
        samples += 1
        missing += not present
        wait = max(0.0, start + samples * 0.01 - time.monotonic())
        ready, _, _ = select.select([sys.stdin], [], [], wait)
        if ready and not sys.stdin.read(1):
            break
    print(json.dumps({"samples": samples, "missing": missing,
                      "longest_interval_ms": round(longest * 1000, 1)}))


def main():
    if sys.argv[1:2] == ["state"]:
        state()
    elif sys.argv[1:2] == ["sample"] and len(sys.argv) == 3:
        sample(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
