"""Debian packages for the VM tier: the stock kernels nodes run and the tools the guest needs,
fetched with `apt-get download` and unpacked with `dpkg-deb` into the cache. Nothing is
installed on the host and nothing goes into its /boot."""

import json
import lzma
import os
import subprocess
from pathlib import Path

# The kernels nodes run, `{series: (suite, meta package)}`: what each meta package depends on at
# the time of the run. Bookworm is the machine's own suite; bullseye's 5.10 (Debian 11, and a
# kernel before 5.18, which keeps no address protocol) comes from a package list of its own.
HOST_SUITE = "bookworm"
KERNELS = {
    "5.10": ("bullseye", "linux-image-amd64"),
    "6.1": (HOST_SUITE, "linux-image-amd64"),
    "6.12": (HOST_SUITE, "linux-image-6.12-amd64"),
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


def mirror():
    """The Debian mirror the machine's own apt sources name for its suite: the `URIs:` of the
    deb822 stanza (`sources.list.d/*.sources`) whose `Suites:` list bookworm, or the URI of a
    one-line `deb URI bookworm ...`."""
    apt = Path("/etc/apt")
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                key, _, value = line.partition(":")
                if not line.startswith("#") and value:
                    fields[key.strip()] = value.strip()
            if HOST_SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        for line in path.read_text().splitlines() if path.exists() else []:
            words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == HOST_SUITE:
                return words[1]
    raise Unavailable(f"no apt source of this machine names Debian's {HOST_SUITE}: cannot tell which mirror to ask")


def apt_options(cache, suite):
    """apt's options for `suite`: none for the machine's own; for another, a source list of one
    line and package lists of their own under the cache, so the machine's sources and lists are
    never touched. The lists are fetched once (a fresh cache: needs root)."""
    if suite == HOST_SUITE:
        return []
    root = cache / f"apt-{suite}"
    listing = root / "sources.list"
    options = ["-o", f"Dir::Etc::SourceList={listing}", "-o", "Dir::Etc::SourceParts=/dev/null",
               "-o", f"Dir::State::Lists={root / 'lists'}", "-o", f"Dir::Cache={root / 'cache'}"]
    if not any((root / "lists").glob("*_Packages*")):
        for directory in (root / "lists" / "partial", root / "cache" / "archives" / "partial"):
            directory.mkdir(parents=True, exist_ok=True)
        listing.write_text(f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror()} {suite} main\n")
        print(f"vm: apt-get update of {suite} into {root}", flush=True)
        subprocess.run(["apt-get", "update", "-qq", *sandbox(), *options], check=True, stdout=subprocess.DEVNULL)
    return options


def sandbox():
    """As root apt drops to its `_apt` user, which cannot write into the cache: say root."""
    return ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []


def candidates(packages, options=()):
    """`{package: (version, architecture)}` of what apt would install, asked in one call; the
    machine's package lists are refreshed once if apt knows none of them (a fresh machine: needs
    root)."""
    found = _candidates(packages, options)
    if len(found) < len(packages) and os.geteuid() == 0 and not options:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        found = _candidates(packages, options)
    missing = sorted(set(packages) - set(found))
    if missing:
        raise Unavailable(f"apt knows no candidate of {', '.join(missing)}: run `apt-get update` as root")
    return found


def _candidates(packages, options):
    show = subprocess.run(["apt-cache", *options, "show", "--no-all-versions", *packages],
                          capture_output=True, text=True)
    found = {}
    for record in show.stdout.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in record.splitlines() if ": " in line and not line.startswith(" "))
        if "Package" in fields:
            found[fields["Package"]] = (fields["Version"], fields["Architecture"])
    return found


def kernel_packages(metas, options=()):
    """`{meta: versioned kernel package}`: what each meta package (`linux-image-amd64`) depends on."""
    found, meta = {}, None
    for line in run(["apt-cache", *options, "depends", *metas]).splitlines():
        key, _, value = line.strip().partition(": ")
        if not line.startswith(" "):
            meta = line.strip()
        elif key == "Depends" and value.startswith("linux-image-"):
            found.setdefault(meta, value)
    missing = sorted(set(metas) - set(found))
    if missing:
        raise Unavailable(f"{', '.join(missing)} depend on no linux-image package")
    return found


def lists_stamp(options=()):
    """When the package lists `options` point at (the machine's without) last changed."""
    lists = Path(next((o.split("=", 1)[1] for o in options if o.startswith("Dir::State::Lists=")),
                      "/var/lib/apt/lists"))
    return max((p.stat().st_mtime for p in lists.glob("*_Packages*")), default=0)


def resolve(cache):
    """What to fetch: `{"tools": {package: [version, arch]}, "kernels": {series: [package,
    version, arch, suite]}}`. apt-cache takes seconds a call on a busy machine, so the answer is
    kept in the cache until a suite's package lists change."""
    if lists_stamp() == 0 and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
    suites = sorted({suite for suite, _ in KERNELS.values()})
    options = {suite: apt_options(cache, suite) for suite in suites}
    stamps = {suite: lists_stamp(options[suite]) for suite in suites}
    saved = cache / "resolved.json"
    if saved.exists() and (answer := json.loads(saved.read_text())).get("lists") == stamps:
        return answer
    kernels = {}
    for suite in suites:
        series = {s: meta for s, (of, meta) in KERNELS.items() if of == suite}
        packages = kernel_packages(sorted(set(series.values())), options[suite])
        versions = candidates(sorted(set(packages.values())), options[suite])
        for s, meta in series.items():
            kernels[s] = [packages[meta], *versions[packages[meta]], suite]
    tools = TOOL_PACKAGES + dependencies(TOOL_PACKAGES)
    versions = candidates(tools)
    answer = {
        "lists": stamps,
        "tools": {package: versions[package] for package in tools},
        "kernels": kernels,
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


def download(packages, debs, options=()):
    """`apt-get download`s each of `{package: (version, arch)}` into `debs` unless present (with
    apt's `options` for another suite); returns the .deb paths."""
    debs.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for package, (version, arch) in packages.items():
        wanted[package] = debs / f"{package}_{version.replace(':', '%3a')}_{arch}.deb"
    missing = [package for package, path in wanted.items() if not path.exists()]
    if missing:
        print(f"vm: apt-get download {' '.join(missing)}", flush=True)
        pinned = [f"{package}={packages[package][0]}" for package in missing]
        subprocess.run(["apt-get", "download", "-q", *sandbox(), *options, *pinned], cwd=debs, check=True,
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
    under emulation than the bzImage decompressing itself. 5.10's and 6.1's payload is xz, 6.12's
    zstd."""
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
    """6.12 ships `.ko.xz` (5.10 and 6.1 plain `.ko`); busybox's depmod and modprobe read plain
    `.ko` only."""
    for packed in modules.rglob("*.ko.xz"):
        packed.with_suffix("").write_bytes(lzma.decompress(packed.read_bytes()))
        packed.unlink()


def kernel_version(root):
    """The release name of the one kernel unpacked under `root` (`6.1.0-57-amd64`)."""
    (release,) = [path.name for path in (root / "lib" / "modules").iterdir()]
    return release

