"""Copies the benchmark tables of target/bench/*.md into README.md, between the bench markers."""

from common import RESULTS, ROOT

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SECTIONS = [("sidecar", "Sidecar"), ("rules", "iptables rules"), ("webhook", "Pod webhook")]


def main():
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    parts = []
    for name, title in SECTIONS:
        table = RESULTS / f"{name}.md"
        if table.exists():
            parts.append(f"**{title}**\n\n{table.read_text().strip()}\n")
    readme.write_text(f"{head}{BEGIN}\n{chr(10).join(parts)}{END}{tail}")


if __name__ == "__main__":
    main()
