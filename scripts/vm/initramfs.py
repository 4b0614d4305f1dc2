"""The guest's root file system: newc cpio archives the kernel unpacks into its rootfs.

A base archive per kernel (its modules, and the tools with exactly the libraries they load) is
cached; a small overlay (the sidecar under test, the guest scripts) is written for every run and
appended: the kernel unpacks concatenated archives one after the other."""

import os
import re
import stat
import subprocess
from pathlib import Path

from debian import Unavailable

# busybox applets the guest scripts use, linked into /bb, which comes last on PATH so iproute2's
# `ip` wins over busybox's (a busybox shell would run its own applet whatever PATH says: the
# scripts run under dash).
APPLETS = """cat cut date env grep head kill ln ls mkdir mktemp modprobe insmod lsmod mount pidof
poweroff printf rm sed sleep sort tail test timeout tr uname unshare usleep wc wget xargs awk
seq sh""".split()

# The tools the cases run, as unpacked from the Debian packages (paths inside the guest).
TOOLS = ["bin/dash", "bin/busybox", "bin/ip", "usr/sbin/nft",
         "usr/sbin/xtables-nft-multi", "usr/sbin/xtables-legacy-multi"]
# iptables' frontends are links to the two multi-call binaries; the unversioned ones are what
# Debian's alternatives point at by default on bookworm: nft.
IPTABLES_LINKS = {
    f"usr/sbin/{family}{tool}": f"xtables-{backend}-multi"
    for family in ("iptables", "ip6tables")
    for tool in ("", "-save", "-restore")
    for backend in ("nft",)
} | {
    f"usr/sbin/{family}-{backend}{tool}": f"xtables-{backend}-multi"
    for family in ("iptables", "ip6tables")
    for tool in ("", "-save", "-restore")
    for backend in ("nft", "legacy")
}
ETC = ["etc/protocols", "etc/services", "etc/ethertypes"]


class Cpio:
    """A newc archive written in order: directories before what they hold."""

    def __init__(self, path):
        self.out = open(path, "wb")
        self.inode = 1
        self.dirs = set()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self._entry("TRAILER!!!", 0, b"")
        self.out.close()

    def _entry(self, name, mode, data, rdev=(0, 0)):
        encoded = name.encode() + b"\0"
        fields = [self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0]
        self.inode += 1
        self.out.write(b"070701" + b"".join(b"%08X" % field for field in fields) + encoded)
        self.out.write(b"\0" * (-(110 + len(encoded)) % 4) + data + b"\0" * (-len(data) % 4))

    def dir(self, name):
        parts = Path(name).parts
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            if path not in self.dirs:
                self.dirs.add(path)
                self._entry(path, stat.S_IFDIR | 0o755, b"")

    def _parent(self, name):
        if "/" in name:
            self.dir(str(Path(name).parent))

    def file(self, name, data, mode=0o755):
        self._parent(name)
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._parent(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name, major, minor):
        self._parent(name)
        self._entry(name, stat.S_IFCHR | 0o600, b"", (major, minor))

    def copy(self, root, name):
        """`root/name` into the archive as `name`, a link as a link."""
        source = root / name
        if source.is_symlink():
            self.symlink(name, os.readlink(source))
        else:
            self.file(name, source.read_bytes(), source.stat().st_mode & 0o777)


def libraries(root, binaries):
    """The shared libraries `binaries` load, as paths under `root`, asked of the unpacked glibc's
    own loader (same architecture as the host), so nothing of the host's leaks in."""
    loader = root / "lib" / "x86_64-linux-gnu" / "ld-linux-x86-64.so.2"
    search = ":".join(str(root / d) for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"))
    needed = {"lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}
    for binary in binaries:
        listing = subprocess.run([str(loader), "--library-path", search, "--list", str(binary)],
                                 capture_output=True, text=True)
        if listing.returncode != 0 and "statically linked" not in listing.stdout + listing.stderr:
            raise Unavailable(f"cannot list the libraries of {binary}: {listing.stderr.strip()}")
        # `libc.so.6 => ROOT/lib/.../libc.so.6 (0x...)`; the loader's own line names it by its
        # absolute path and is added above.
        for match in re.finditer(r"^\s+[^/\s]\S* => (\S+) \(", listing.stdout, re.MULTILINE):
            path = Path(match.group(1))
            if not path.is_relative_to(root):
                raise Unavailable(f"{binary} needs {path}, which no unpacked package holds")
            needed.add(str(path.relative_to(root)))
            # The soname is a link to the versioned file: both go in.
            real = Path(os.path.realpath(path))
            if not real.is_relative_to(root):
                raise Unavailable(f"{path} links out of the unpacked packages")
            needed.add(str(real.relative_to(root)))
    return sorted(needed)


def module_closure(modules_dir, roots):
    """The modules (paths relative to `modules_dir`) that `roots` need, by modules.dep."""
    depends = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        module, _, deps = line.partition(":")
        depends[module] = deps.split()
    wanted, queue = set(), [root for root in roots if root in depends]
    while queue:
        module = queue.pop()
        if module not in wanted:
            wanted.add(module)
            queue += depends[module]
    return sorted(wanted)


def module_roots(modules_dir):
    """The links and netfilter, with crc32c, which libcrc32c asks the crypto API for (a soft
    dependency modules.dep does not list)."""
    kernel = modules_dir / "kernel"
    patterns = ["net/netfilter/*.ko", "net/ipv4/netfilter/*.ko", "net/ipv6/netfilter/*.ko",
                "drivers/net/dummy.ko", "drivers/net/veth.ko", "crypto/crc32c*.ko",
                "arch/x86/crypto/crc32c*.ko", "lib/libcrc32c.ko"]
    return [str(path.relative_to(modules_dir)) for pattern in patterns for path in kernel.glob(pattern)]


def write_base(path, tools_root, kernel_root, release):
    """The cached part: the tools, their libraries, and the kernel's modules."""
    modules_dir = kernel_root / "lib" / "modules" / release
    modules = module_closure(modules_dir, module_roots(modules_dir))
    xtables = sorted(str(p.relative_to(tools_root))
                     for p in (tools_root / "usr/lib/x86_64-linux-gnu/xtables").glob("*.so"))
    # busybox-static has no libraries (and the loader crashes when asked about it).
    binaries = [tools_root / tool for tool in TOOLS if tool != "bin/busybox"]
    binaries += [tools_root / so for so in xtables]
    with Cpio(path) as cpio:
        for name in ["dev", "proc", "sys", "run", "tmp", "var", "etc", "bb"]:
            cpio.dir(name)
        cpio.char_device("dev/console", 5, 1)
        cpio.symlink("var/run", "/run")
        for name in TOOLS + xtables + libraries(tools_root, binaries) + ETC:
            parent = str(Path(name).parent)
            if (tools_root / parent).is_symlink():
                raise Unavailable(f"{parent} is a link in the unpacked packages")
            cpio.copy(tools_root, name)
        cpio.symlink("bin/sh", "dash")
        for link, target in IPTABLES_LINKS.items():
            cpio.symlink(link, target)
        for name in modules + ["modules.dep", "modules.alias", "modules.symbols", "modules.builtin"]:
            if (modules_dir / name).exists():
                cpio.file(f"lib/modules/{release}/{name}", (modules_dir / name).read_bytes(), 0o644)
    return len(modules)


def write_overlay(path, sidecar, guest_dir, extra=()):
    """The per-run part: /init, the busybox applets (so a new one needs no new base), the case
    scripts, the sidecar under test."""
    with Cpio(path) as cpio:
        cpio.file("init", (guest_dir / "init").read_bytes())
        for applet in APPLETS:
            cpio.symlink(f"bb/{applet}", "/bin/busybox")
        for script in sorted(guest_dir.rglob("*.sh")):
            cpio.file(f"vm/{script.relative_to(guest_dir)}", script.read_bytes())
        cpio.file("usr/local/bin/apiserver-proxy-sidecar", sidecar.read_bytes())
        for name, data in extra:
            cpio.file(name, data)
