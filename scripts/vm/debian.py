"""Debian packages for the VM tier: the stock kernels nodes run and the tools the guest needs,
fetched with `apt-get download` and unpacked with `dpkg-deb` into the cache. Nothing is
installed on the host and nothing goes into its /boot."""

import json
import lzma
import os
import subprocess
from pathlib import Path

# The kernels of Debian bookworm nodes: what each meta package depends on at the time of the run.
KERNELS = {
    "6.1": "linux-image-amd64",
    "6.12": "linux-image-6.12-amd64",
}

# The guest's userland, from bookworm's packages (their libraries are added by the loader's own
# view of what each binary needs, see initramfs.py).
TOOL_PACKAGES = ["busybox-static", "dash", "iproute2", "iptables", "nftables", "netbase"]

# What the kernel tier needs of a kernel package: the image, and the modules of the links and
# netfilter (with the crc32c modules libcrc32c asks the crypto API for).
KERNEL_MEMBERS = [
    "./boot/vmlinuz-*",
    "./lib/modules/*/kernel/net/*",
    "./lib/modules/*/kernel/lib/*",
    "./lib/modules/*/kernel/crypto/*",
    "./lib/modules/*/kernel/arch/x86/crypto/*",
    "./lib/modules/*/kernel/drivers/net/dummy.ko*",
    "./lib/modules/*/kernel/drivers/net/veth.ko*",
    "./lib/modules/*/modules.builtin*",
    "./lib/modules/*/modules.order",
]


class Unavailable(Exception):
    """What the guest needs cannot be fetched or built here (no candidate, a missing library)."""


def run(args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout


def candidates(packages):
    """`{package: (version, architecture)}` of what apt would install, asked in one call; the
    package lists are refreshed once if apt knows none of them (a fresh machine: needs root)."""
    found = _candidates(packages)
    if len(found) < len(packages) and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        found = _candidates(packages)
    missing = sorted(set(packages) - set(found))
    if missing:
        raise Unavailable(f"apt knows no candidate of {', '.join(missing)}: run `apt-get update` as root")
    return found


def _candidates(packages):
    show = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages], capture_output=True, text=True)
    found = {}
    for record in show.stdout.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in record.splitlines() if ": " in line and not line.startswith(" "))
        if "Package" in fields:
            found[fields["Package"]] = (fields["Version"], fields["Architecture"])
    return found


def kernel_packages(metas):
    """`{meta: versioned kernel package}`: what each meta package (`linux-image-amd64`) depends on."""
    found, meta = {}, None
    for line in run(["apt-cache", "depends", *metas]).splitlines():
        key, _, value = line.strip().partition(": ")
        if not line.startswith(" "):
            meta = line.strip()
        elif key == "Depends" and value.startswith("linux-image-"):
            found.setdefault(meta, value)
    missing = sorted(set(metas) - set(found))
    if missing:
        raise Unavailable(f"{', '.join(missing)} depend on no linux-image package")
    return found


def resolve(cache):
    """What to fetch: `{"tools": {package: [version, arch]}, "kernels": {series: [package,
    version, arch]}}`. apt-cache takes seconds a call on a busy machine, so the answer is kept in
    the cache until the package lists change."""
    lists = Path("/var/lib/apt/lists")
    stamp = max((p.stat().st_mtime for p in lists.glob("*_Packages*")), default=0)
    saved = cache / "resolved.json"
    if saved.exists() and (answer := json.loads(saved.read_text())).get("lists") == stamp:
        return answer
    if stamp == 0 and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        stamp = max((p.stat().st_mtime for p in lists.glob("*_Packages*")), default=0)
    kernels = kernel_packages(list(KERNELS.values()))
    tools = TOOL_PACKAGES + dependencies(TOOL_PACKAGES)
    versions = candidates(tools + list(kernels.values()))
    answer = {
        "lists": stamp,
        "tools": {package: versions[package] for package in tools},
        "kernels": {series: [kernels[meta], *versions[kernels[meta]]] for series, meta in KERNELS.items()},
    }
    saved.write_text(json.dumps(answer, indent=2) + "\n")
    return answer


def dependencies(packages):
    """What `packages` depend on, recursively (Depends, not Recommends): their libraries, and a
    few programs the guest does not need, which cost little."""
    listing = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                   "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages])
    names = {line for line in listing.splitlines() if not line.startswith((" ", "<"))}
    return sorted(names - set(packages))


def download(packages, debs):
    """`apt-get download`s each of `{package: (version, arch)}` into `debs` unless present;
    returns the .deb paths."""
    debs.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for package, (version, arch) in packages.items():
        wanted[package] = debs / f"{package}_{version.replace(':', '%3a')}_{arch}.deb"
    missing = [package for package, path in wanted.items() if not path.exists()]
    if missing:
        print(f"vm: apt-get download {' '.join(missing)}", flush=True)
        # As root apt drops to its `_apt` user, which cannot write into the cache: say root.
        sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        pinned = [f"{package}={packages[package][0]}" for package in missing]
        subprocess.run(["apt-get", "download", "-q", *sandbox, *pinned], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
    for package, path in wanted.items():
        if not path.exists():
            raise Unavailable(f"apt-get download {package} gave no {path.name}")
    return list(wanted.values())


def unpack(deb, into, members=()):
    """`dpkg-deb --fsys-tarfile`, keeping only `members` (tar wildcards) when given."""
    into.mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    selection = ["--wildcards", *members] if members else []
    subprocess.run(["tar", "-x", "-C", str(into), *selection], stdin=tar.stdout, check=True)
    if tar.wait() != 0:
        raise Unavailable(f"dpkg-deb cannot read {deb}")


def vmlinux(bzimage):
    """The uncompressed kernel inside a bzImage: boots through its PVH entry, about 2.5 s faster
    under emulation than the bzImage decompressing itself. 6.1's payload is xz, 6.12's zstd."""
    data = bzimage.read_bytes()
    xz = data.find(b"\xfd7zXZ\x00")
    if xz >= 0:
        return lzma.LZMADecompressor().decompress(data[xz:])
    zstd = data.find(b"\x28\xb5\x2f\xfd")
    if zstd >= 0:
        # zstd stops with an error at the bytes after the frame, having written the kernel.
        out = subprocess.run(["zstd", "-dc"], input=data[zstd:], capture_output=True).stdout
        if out.startswith(b"\x7fELF"):
            return out
    raise Unavailable(f"{bzimage} holds no xz or zstd payload this script can unpack")


def decompress_modules(modules):
    """6.12 ships `.ko.xz`; busybox's depmod and modprobe read plain `.ko` only."""
    for packed in modules.rglob("*.ko.xz"):
        packed.with_suffix("").write_bytes(lzma.decompress(packed.read_bytes()))
        packed.unlink()


def kernel_version(root):
    """The release name of the one kernel unpacked under `root` (`6.1.0-57-amd64`)."""
    (release,) = [path.name for path in (root / "lib" / "modules").iterdir()]
    return release

