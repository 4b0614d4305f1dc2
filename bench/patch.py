"""The cost of one review without HTTP or TLS (criterion, domain/benches/review.rs): ns and
allocations per review, for the seed's sample and for a Pod of 50 containers with large unknown
fields.

Usage: python3 bench/patch.py
"""

import json
import subprocess

from common import ROOT, write

CASES = {"seed_sample": "the seed's sample review", "pod_50_containers": "a Pod of 50 containers, large unknown fields"}


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


if __name__ == "__main__":
    main()
