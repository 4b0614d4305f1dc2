"""Joins the rows of every benchmark (target/bench/NAME.json) into one table, written as
target/bench/summary.json and summary.md and copied into README.md between the bench markers.
Never edit the README's figures by hand: run `make bench`.

With --keep-not-run, every benchmark that did not run keeps its rows from the README (not only
the soak and fuzzing), and the note names them: for a partial run, such as the fuzz targets or
one benchmark re-measured alone."""

import json
import os
import platform
import subprocess
import sys

from common import RESULTS, ROOT, markdown_table

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# In the order of the table; a benchmark that did not run is left out, and said so.
SECTIONS = ["webhook", "patch", "sidecar", "sync", "rules", "soak", "fuzz"]
# Run by hand, for minutes each (make soak, make fuzz): where they did not run this time, the
# README keeps their rows from the last run, which each row's figure names first.
KEPT_IF_NOT_RUN = ["soak", "fuzz"]
# How each benchmark's rows begin, to find them in the README.
ROW_PREFIXES = {
    "webhook": ("webhook ",),
    "patch": ("review + patch",),
    "sidecar": ("sidecar address", "sidecar exec", "sidecar idle", "sidecar CPU"),
    "sync": ("sidecar one full sync",),
    "rules": ("sidecar, ",),
    "soak": ("soak:",),
    "fuzz": ("fuzz ",),
}


def readme_rows(readme_text, name):
    """The rows of benchmark `name` in the README's current table."""
    table = readme_text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = ([cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in table.splitlines() if line.startswith("| "))
    return [row for row in rows if row[0].startswith(ROW_PREFIXES[name])]


def main():
    keep = SECTIONS if "--keep-not-run" in sys.argv[1:] else KEPT_IF_NOT_RUN
    readme = ROOT / "README.md"
    rows, missing, kept = [], [], []
    for name in SECTIONS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            rows += json.loads(path.read_text())["table"]
        elif name in keep and (earlier := readme_rows(readme.read_text(), name)):
            rows += earlier
            kept.append(name)
        else:
            missing.append(name)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    load = open("/proc/loadavg").read().split()[0]
    note = (f"Measured at commit {commit} on {platform.machine()} with {len(os.sched_getaffinity(0))} cores,"
            f" load average {load} when the table was written.")
    if kept:
        note += f" Not run this time, so from the last run: {', '.join(kept)}."
    if missing:
        note += f" Not run: {', '.join(missing)}."
    (RESULTS / "summary.json").write_text(json.dumps({"note": note, "table": rows}, indent=2) + "\n")
    table = markdown_table(rows)
    (RESULTS / "summary.md").write_text(f"{note}\n\n{table}")
    print(table, end="")
    head, rest = readme.read_text().split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{note}\n\n{table}{END}{tail}")


if __name__ == "__main__":
    main()
