"""The cost of one review without HTTP or TLS (criterion, domain/benches/review.rs): ns and
allocations per review, for the seed's sample, a Pod of 50 containers with large unknown fields,
and the two largest answers (the most containers the rule patches, and 250,000 empty containers
past its bound). The bytes allocated during a review bound its peak memory from above.

Guard: the seed sample's review + patch costs at most GUARD_SEED_NS (issue 14: plain code wins
within it); the script fails beyond it, after writing the figures.

Usage: python3 bench/patch.py
"""

import json
import subprocess
import sys

from common import ROOT, write

CASES = {"seed_sample": "the seed's sample review", "pod_50_containers": "a Pod of 50 containers, large unknown fields",
         "pod_2048_empty_containers": "2 × 1,024 empty containers (the most patched), 253-character FQDN",
         "pod_250000_empty_containers": "250,000 empty containers (past the bound: no patch)"}
GUARD_SEED_NS = 3000


def main():
    out = subprocess.run(["cargo", "bench", "-q", "-p", "domain", "--bench", "review", "--", "--noplot"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    allocations = {}
    for line in out.splitlines():
        if line.startswith("ALLOCATIONS "):
            _, name, count, bytes_, size = line.split()
            allocations[name] = {"allocations": int(count), "bytes_allocated": int(bytes_), "review_bytes": int(size)}
    figures, rows = {}, []
    for name, label in CASES.items():
        estimates = json.loads((ROOT / "target" / "criterion" / name / "new" / "estimates.json").read_text())
        ns = round(estimates["median"]["point_estimate"])
        figures[name] = {"median_ns": ns, **allocations[name]}
        a = allocations[name]
        rows.append((f"review + patch, decode to encoded answer: {label} ({a['review_bytes'] / 1024:.1f} KiB)",
                     f"{ns / 1000:.1f} µs; {a['allocations']} allocations, {a['bytes_allocated'] / 1024:.1f} KiB per review"))
    write("patch", figures, rows)
    seed = figures["seed_sample"]["median_ns"]
    if seed > GUARD_SEED_NS:
        sys.exit(f"guard: review + patch of the seed sample takes {seed} ns, more than {GUARD_SEED_NS} ns")


if __name__ == "__main__":
    main()
