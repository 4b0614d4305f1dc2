#!/usr/bin/env python3
"""The VM tier: boots Debian's stock kernels (bullseye's 5.10, bookworm's 6.1 and 6.12) in
throwaway qemu VMs and runs the static release sidecar inside, one named case after another,
against each kernel's real dummy, veth, nf_tables and legacy xtables. See docs/vm.md.

    python3 scripts/vm/run.py                      # every kernel, every case
    python3 scripts/vm/run.py --kernel 6.12 --case repair-link-deleted
    VM_CASES=dual-stack,migrate-to-lo python3 scripts/vm/run.py   # some cases
    python3 scripts/vm/run.py --prepare            # only fetch and build the cache

Exit status 0 when every case that ran passed on every kernel; 2 when the tier cannot run here
(no qemu, no package lists, no sidecar binary), so the caller can skip loudly; 1 otherwise."""

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from pathlib import Path

import debian
import initramfs

ROOT = Path(__file__).resolve().parents[2]
GUEST = Path(__file__).resolve().parent / "guest"
CASES = GUEST / "cases"
CANNOT_RUN = 2
# Only keeps a hung guest from hanging the test; it asserts nothing about speed.
HANG_SECONDS = 300

CASE_LINE = re.compile(r"^CASE (\S+): (PASS|FAIL)\b ?(.*)$")
FIGURE_LINE = re.compile(r"^FIGURE (\S+) (\S+) (\S+) (.*)$")
END_LINE = re.compile(r"^VM-END (\d+)$")


class CannotRun(Exception):
    """The tier cannot run on this machine (as opposed to a case failing)."""


def cases():
    """Every case name, in file order: `NN-name.sh` is case `name`."""
    return [script.stem.split("-", 1)[1] for script in sorted(CASES.glob("*.sh"))]


def selected(asked, names):
    """The case names to run: those asked for (`--case`, else `VM_CASES=a,b`), else all."""
    asked = asked or [name for name in os.environ.get("VM_CASES", "").split(",") if name]
    if not asked:
        return names
    unknown = sorted(set(asked) - set(names))
    if unknown:
        raise SystemExit(f"vm: unknown case {', '.join(unknown)}: expected one of {', '.join(names)}")
    return [name for name in names if name in asked]


# === the cache ===

class Cache:
    """Downloads and built archives under one directory, keyed by package versions, so a second
    run boots at once. A lock serialises runs that prepare at the same time."""

    def __init__(self, path):
        self.path = path
        self.debs = path / "debs"

    def __enter__(self):
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = open(self.path / ".lock", "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_):
        self.lock.close()

    def tools(self, packages):
        """The tool packages and their libraries, unpacked into one tree."""
        debs = debian.download(packages, self.debs)
        key = hashlib.sha256("\n".join(sorted(d.name for d in debs)).encode()).hexdigest()[:12]
        root = self.path / f"tools-{key}"
        if not (root / ".done").exists():
            shutil.rmtree(root, ignore_errors=True)
            for deb in debs:
                debian.unpack(deb, root)
            (root / ".done").touch()
        return root, key

    def kernel(self, package, version, arch, suite, tools_root, tools_key):
        """`(vmlinux, base archive, kernel release)` of a kernel package of `suite`."""
        (deb,) = debian.download({package: (version, arch)}, self.debs, debian.apt_options(self.path, suite))
        root = self.path / deb.stem
        if not (root / ".done").exists():
            started = time.monotonic()
            shutil.rmtree(root, ignore_errors=True)
            debian.unpack(deb, root, debian.KERNEL_MEMBERS)
            release = debian.kernel_version(root)
            debian.decompress_modules(root / "lib" / "modules" / release)
            subprocess.run([str(tools_root / "bin" / "busybox"), "depmod", "-b", str(root), release], check=True)
            (bzimage,) = (root / "boot").glob("vmlinuz-*")
            (root / "vmlinux").write_bytes(debian.vmlinux(bzimage))
            (root / ".done").touch()
            print(f"vm: unpacked {deb.name} in {time.monotonic() - started:.1f} s", flush=True)
        release = debian.kernel_version(root)
        base = self.path / f"{deb.stem}-tools-{tools_key}.cpio"
        if not base.exists():
            partial = base.with_suffix(".partial")
            count = initramfs.write_base(partial, tools_root, root, release)
            partial.rename(base)
            print(f"vm: built {base.name}: {count} modules, {base.stat().st_size >> 20} MiB", flush=True)
        return root / "vmlinux", base, release


def prepare(cache_dir, kernels):
    with Cache(cache_dir) as cache:
        wanted = debian.resolve(cache.path)
        tools_root, tools_key = cache.tools(wanted["tools"])
        return {series: cache.kernel(*wanted["kernels"][series], tools_root, tools_key) for series in kernels}


# === a VM ===

def accelerator():
    """TCG, unless a real KVM module is loaded: nested PVM (`kvm_pvm`) aborts with `-cpu host`
    and runs other models about 100x slower than plain emulation (docs/vm.md)."""
    real_kvm = any(Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd"))
    if real_kvm and not Path("/sys/module/kvm_pvm").exists() and os.access("/dev/kvm", os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    # A 64 MiB translation cache: qemu's default takes a GiB for a guest this small.
    return ["-accel", "tcg,tb-size=64", "-cpu", "max"]


def addr_proto(work):
    """guest/addr-proto.c built static (gcc, as the Rust toolchain's linker needs anyway); the
    ownership cases read IFA_PROTO with it. Without gcc those checks fail, saying why."""
    binary = work / "addr-proto"
    source = GUEST / "addr-proto.c"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        if shutil.which("gcc") is None:
            return []
        subprocess.run(["gcc", "-static", "-Os", "-Wall", "-Werror", "-o", str(binary), str(source)], check=True)
    return [("usr/local/bin/addr-proto", binary.read_bytes())]


def boot(series, vmlinux, base, sidecar, names, work, echo):
    """Boots one kernel with the cases `names`; returns what the guest reported."""
    work.mkdir(parents=True, exist_ok=True)
    overlay = work / "overlay.cpio"
    initramfs.write_overlay(overlay, sidecar, GUEST, addr_proto(work))
    initrd = work / "initrd.cpio"
    with open(initrd, "wb") as out:
        for part in (base, overlay):
            with open(part, "rb") as source:
                shutil.copyfileobj(source, out)
    command = [
        "qemu-system-x86_64", *accelerator(), "-m", "512", "-smp", "1",
        "-nodefaults", "-display", "none", "-nic", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", str(vmlinux), "-initrd", str(initrd),
        # ACPI stays on: with acpi=off `poweroff -f` hangs. panic=-1 ends the VM on a panic.
        "-append", f"console=ttyS0 quiet panic=-1 vmcases={','.join(names)}",
    ]
    report = {"kernel": series, "cases": {}, "figures": [], "end": None, "log": []}
    started = time.monotonic()
    qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    hung = threading.Timer(HANG_SECONDS, qemu.kill)
    hung.start()
    for raw in qemu.stdout:
        line = raw.decode(errors="replace").rstrip("\r\n")
        report["log"].append(line)
        if echo:
            print(f"[{series} {time.monotonic() - started:6.2f}] {line}", flush=True)
        if case := CASE_LINE.match(line):
            report["cases"][case.group(1)] = (case.group(2), case.group(3))
        elif figure := FIGURE_LINE.match(line):
            report["figures"].append(figure.groups())
        elif end := END_LINE.match(line):
            report["end"] = int(end.group(1))
    qemu.wait()
    if not hung.is_alive():
        report["log"].append(f"vm: killed after {HANG_SECONDS} s: the guest hung")
    hung.cancel()
    report["seconds"] = round(time.monotonic() - started, 1)
    (work / "console.log").write_text("\n".join(report["log"]) + "\n")
    return report


# === the verdict ===

def verdict(report, names, everything):
    """Rows `(case, result, detail)` for every case, and whether the kernel passed."""
    rows, passed = [], report["end"] is not None
    for name in everything:
        if name not in names:
            rows.append((name, "not run", "not selected"))
            continue
        result, detail = report["cases"].get(name, ("MISSING", "the guest reported nothing"))
        rows.append((name, result, detail))
        passed = passed and result == "PASS"
    return rows, passed


def print_table(series, report, rows):
    width = max(len(name) for name, _, _ in rows)
    print(f"\nVM tier, Debian kernel {series} ({report['release']}): {report['seconds']} s from launch to poweroff")
    for name, result, detail in rows:
        print(f"  {name:<{width}}  {result:<7}  {detail}")
    if report["end"] is None:
        print(f"  the guest never reported its end: see {report['console']}")
    for name, median, most, what in report["figures"]:
        print(f"  figure {name}: {what}: median {median} ms, max {most} ms")
    sys.stdout.flush()


README_BEGIN, README_END = "<!-- vm:begin -->", "<!-- vm:end -->"


def write_readme(reports, rows_by_kernel, tier_seconds):
    """The VM tier's figures into README.md between its markers (never by hand): the tier's time
    and, per kernel, the time from launch to poweroff, the cases and the repair latencies the
    guest measured from `ip -ts monitor` timestamps."""
    series = [report["kernel"] for report in reports]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    load = open("/proc/loadavg").read().split()[0]
    engine = "KVM" if "kvm" in accelerator() else "TCG (emulation, no KVM)"
    lines = [
        f"Measured by `make vm-figures` at commit {commit}: qemu {engine}, every kernel side by side as in `make test`,"
        f" load average {load} when written. The whole tier (warm cache, every kernel): {tier_seconds:.0f} s.",
        "",
        "| | " + " | ".join(f"Debian {r['kernel']} (`{r['release']}`)" for r in reports) + " |",
        "| --- | " + " | ".join("---" for _ in reports) + " |",
        "| launch to poweroff | " + " | ".join(f"{r['seconds']} s" for r in reports) + " |",
        "| named cases passed / run | " + " | ".join(
            f"{sum(row[1] == 'PASS' for row in rows_by_kernel[s])} / "
            f"{sum(row[1] in ('PASS', 'FAIL', 'MISSING') for row in rows_by_kernel[s])}" for s in series) + " |",
    ]
    figures = {}
    for report in reports:
        for name, median, most, what in report["figures"]:
            figures.setdefault(what, {})[report["kernel"]] = f"{median} / {most} ms"
    for what, values in figures.items():
        lines.append(f"| sidecar {what}, inside the VM: median / max of 5 | "
                     + " | ".join(values.get(s, "-") for s in series) + " |")
    readme = ROOT / "README.md"
    head, rest = readme.read_text().split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(head + README_BEGIN + "\n" + "\n".join(lines) + "\n" + README_END + tail)
    print(f"vm: figures written into {readme}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", action="append", choices=sorted(debian.KERNELS), help="default: every kernel")
    parser.add_argument("--case", action="append", default=[], help="a case name; default: every case")
    parser.add_argument("--sidecar", type=Path, default=ROOT / "target" / "docker" / "apiserver-proxy-sidecar",
                        help="the static sidecar (make docker-binaries)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("VM_CACHE", ROOT / "target" / "vm-cache")))
    parser.add_argument("--prepare", action="store_true", help="only fetch and build the cache")
    parser.add_argument("--readme", action="store_true", help="write the figures into README.md")
    parser.add_argument("--quiet", action="store_true", help="do not echo the guest's console")
    args = parser.parse_args()
    kernels = args.kernel or sorted(debian.KERNELS)
    everything = cases()
    names = selected(args.case, everything)

    started = time.monotonic()
    try:
        for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb", "zstd"):
            if shutil.which(tool) is None:
                raise CannotRun(f"{tool} is not installed (scripts/deps.sh installs it)")
        if not args.prepare and not args.sidecar.exists():
            raise CannotRun(f"{args.sidecar} is missing: run `make docker-binaries`")
        try:
            prepared = prepare(args.cache, kernels)
        except subprocess.CalledProcessError as error:
            raise CannotRun(f"cannot fetch or unpack the Debian packages: {error}") from error
        except debian.Unavailable as error:
            raise CannotRun(str(error)) from error
    except CannotRun as error:
        print(f"vm: the tier cannot run here: {error}", file=sys.stderr)
        return CANNOT_RUN
    if args.prepare:
        return 0

    reports, rows_by_kernel, failed = [], {}, []
    def boot_kernel(series):
        vmlinux, base, release = prepared[series]
        work = ROOT / "target" / "vm" / series
        report = boot(series, vmlinux, base, args.sidecar, names, work, not args.quiet)
        report["release"], report["console"] = release, work / "console.log"
        return report

    # All side by side: each emulated CPU is one host thread; on this machine's two cores three
    # guests at once finish sooner than two and then the third alone.
    with ThreadPoolExecutor(max_workers=len(kernels)) as pool:
        booted = list(pool.map(boot_kernel, kernels))
    for series, report in zip(kernels, booted):
        rows, passed = verdict(report, names, everything)
        print_table(series, report, rows)
        reports.append(report)
        rows_by_kernel[series] = rows
        if not passed:
            failed.append(series)
    if failed:
        print(f"vm: failed on {', '.join(failed)}: consoles in target/vm/<kernel>/console.log")
        return 1
    if args.readme:
        write_readme(reports, rows_by_kernel, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
