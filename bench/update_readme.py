"""Joins the rows of every benchmark (target/bench/NAME.json) into one table, written as
target/bench/summary.json and summary.md and copied into README.md between the bench markers.
Never edit the README's figures by hand: run `make bench`.

`--only NAME` (such as `--only flood`, after `python3 bench/flood.py` alone) replaces only that
benchmark's rows, found by their figure's prefixes (`ROW_PREFIXES`), and keeps every other row as the README
has it, with the note saying which rows were measured when."""

import json
import os
import platform
import subprocess
import sys

from common import RESULTS, ROOT, markdown_table

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# In the order of the table; a benchmark that did not run is left out, and said so.
SECTIONS = ["webhook", "flood", "patch", "sidecar", "sync", "rules", "datapath", "soak", "fuzz"]
# Run by hand, for minutes each (make soak, make fuzz): where they did not run this time, the
# README keeps their rows from the last run, which each row's figure names first.
KEPT_IF_NOT_RUN = ["soak", "fuzz"]
# How each benchmark's rows begin, to find them in the README.
ROW_PREFIXES = {
    "webhook": ("webhook ",),
    "flood": ("flood ",),
    "patch": ("review + patch",),
    "sidecar": ("sidecar address", "sidecar exec", "sidecar idle", "sidecar CPU"),
    "sync": ("sidecar one full sync",),
    "rules": ("sidecar, ",),
    "datapath": ("data path: ",),
    "soak": ("soak:",),
    "fuzz": ("fuzz ",),
}


def readme_rows(readme_text, name):
    """The rows of benchmark `name` in the README's current table."""
    table = readme_text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = ([cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in table.splitlines() if line.startswith("| "))
    return [row for row in rows if row[0].startswith(ROW_PREFIXES[name])]


def measured_note():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    load = open("/proc/loadavg").read().split()[0]
    return commit, load


def replace_section(name):
    """Replaces the rows of benchmark NAME in the README's table, keeping the others."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    note = table.strip().split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in table.splitlines() if line.startswith("| ") and not line.startswith("| figure |")
            and not line.startswith("| ---")]
    new_rows = json.loads((RESULTS / f"{name}.json").read_text())["table"]
    prefixes = ROW_PREFIXES[name]
    if any(not row[0].startswith(prefixes) for row in new_rows):
        raise SystemExit(f"every figure of {name}.json must start with one of {prefixes}")
    at = next((i for i, row in enumerate(rows) if row[0].startswith(prefixes)), None)
    if at is None:
        # After the rows of the benchmark before it in SECTIONS, found by that benchmark's prefixes.
        before = ROW_PREFIXES[SECTIONS[SECTIONS.index(name) - 1]]
        at = max((i + 1 for i, row in enumerate(rows) if row[0].startswith(before)), default=len(rows))
    rows = [row for row in rows if not row[0].startswith(prefixes)]
    rows[at:at] = new_rows
    commit, load = measured_note()
    note = note.split(f" The {name} rows:", 1)[0]
    note += f" The {name} rows: measured at commit {commit}, load average {load}."
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{note}\n\n{markdown_table(rows)}{END}{tail}")
    print(markdown_table(rows), end="")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--only":
        return replace_section(sys.argv[2])
    readme = ROOT / "README.md"
    rows, missing, kept = [], [], []
    for name in SECTIONS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            rows += json.loads(path.read_text())["table"]
        elif name in KEPT_IF_NOT_RUN and (earlier := readme_rows(readme.read_text(), name)):
            rows += earlier
            kept.append(name)
        else:
            missing.append(name)
    commit, load = measured_note()
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
