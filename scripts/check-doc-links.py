#!/usr/bin/env python3
"""Checks that every relative link and every repository path named in README.md and docs/ exists.

A link is `[text](target)` or `<img src=...>`-free Markdown: its target, without `#anchor`, is
resolved from the document's folder. A path is a code span (`like/this.rs`) that starts with one
of the repository's top-level folders or is a file of the root; it is resolved from the root,
then from the document's folder. A short source path (`http/server.rs`) must end the path of
one of the crates' Rust files. Generated or uncommitted places (target/, fuzz/corpus/, …) are
not checked. The build files'
comments (Cargo.toml, Makefile, Dockerfile) are checked for the docs they cite. The comments of
the code (Rust `//` and doc comments, `#` comments of scripts, manifests and build files, Python
docstrings) are checked for the repository paths they name (`bench/flood.py`, `docs/vm.md`),
whether in backticks or not: a comment that cites a file which was renamed or removed misleads
the next reader as much as a doc does. Exit 1 with one line per broken reference, `FILE:LINE: what`.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SPAN = re.compile(r"`([^`\s]+)`")
# Made by builds and runs, never committed.
GENERATED = ("target/", "fuzz/corpus/", "fuzz/artifacts/", "fuzz/target/")


def documents():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").rglob("*.md"))


def top_level():
    return {p.name for p in ROOT.iterdir() if not p.name.startswith(".git")} - {"target"}


SHORT_SOURCE = re.compile(r"[a-z_]+(/[a-z_]+)*\.rs")


def sources():
    """Every Rust file of the crates, as `/`-joined paths from the root."""
    if not hasattr(sources, "found"):
        sources.found = [
            str(path.relative_to(ROOT))
            for folder in ("domain", "adapters", "apps", "tests", "fuzz")
            for path in (ROOT / folder).rglob("*.rs")
            if "target" not in path.parts
        ]
    return sources.found


def is_path(span, roots):
    if "://" in span or span.startswith(("/", "~", "$", "-")) or "*" in span or "{" in span:
        return False
    # A placeholder (`fuzz/seeds/TARGET`, `cases/NN-name.sh`) names a kind of path, not one.
    if any(re.fullmatch(r"[A-Z_]{2,}|NN-.*", part) for part in span.split("/")):
        return False
    head = span.split("/", 1)[0]
    return head in roots and ("/" in span or (ROOT / span).is_file())


def exists(target, doc):
    clean = target.split("#", 1)[0].split(":", 1)[0].rstrip(",.;")
    if not clean:
        return True
    return (doc.parent / clean).exists() or (ROOT / clean).exists()


def broken(doc, roots):
    text = doc.read_text(encoding="utf-8")
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            if not exists(target, doc):
                yield number, f"link to {target} does not exist"
        for span in SPAN.findall(line):
            if is_path(span, roots) and not span.startswith(GENERATED):
                if not exists(span, doc):
                    yield number, f"path {span} does not exist"
            elif SHORT_SOURCE.fullmatch(span) and "/" in span:
                if not any(path.endswith("/" + span) for path in sources()):
                    yield number, f"source {span} is in no crate's src/"


CITED_DOC = re.compile(r"\b(docs/[\w/.-]+\.md)\b")


def build_files():
    yield from (ROOT / name for name in ("Makefile", "Dockerfile", "Cargo.toml"))
    for folder in ("domain", "adapters", "apps", "tests"):
        yield from sorted((ROOT / folder).rglob("Cargo.toml"))


def cited(path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for doc in CITED_DOC.findall(line):
            if not (ROOT / doc).exists():
                yield number, f"cites {doc}, which does not exist"


# A repository path in running text: a top-level folder, then a path; not part of a longer path
# (`../shared/...`, `target/x/docs/...`) and not a URL.
COMMENT_PATH = re.compile(r"(?<![\w./:-])((?:%s)/[\w./-]*[\w/])")
CODE_FOLDERS = ("domain", "adapters", "apps", "tests", "bench", "scripts", "fuzz", "deploy", "docs",
                "testdata", ".ci", ".cargo")
CODE_SUFFIXES = {".rs", ".py", ".sh", ".toml", ".yaml", ".yml"}
CODE_NAMES = {"Makefile", "Dockerfile", "run"}


def code_files():
    yield from (ROOT / name for name in ("Makefile", "Dockerfile", "Cargo.toml"))
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or "target" in path.relative_to(ROOT).parts:
                continue
            if str(path.relative_to(ROOT)).startswith(GENERATED):
                continue
            if path.suffix in CODE_SUFFIXES or path.name in CODE_NAMES:
                yield path


def comments(path):
    """(line number, comment text) of each comment line: `//` in Rust, `#` elsewhere, and the
    lines of Python's triple-quoted docstrings."""
    marker = "//" if path.suffix == ".rs" else "#"
    in_docstring = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if path.suffix == ".py" and stripped.count('"""') % 2 == 1:
            in_docstring = not in_docstring
            yield number, stripped
            continue
        if in_docstring:
            yield number, stripped
        elif marker in line:
            # A marker inside a string (`"http://"`) is not a comment: only a line that starts
            # with one, or one after code and a space.
            if stripped.startswith(marker):
                yield number, stripped[len(marker):]
            elif " " + marker + " " in line:
                yield number, line.split(" " + marker + " ", 1)[1]


def named_in_comments(path, roots):
    pattern = re.compile(COMMENT_PATH.pattern % "|".join(re.escape(r) for r in sorted(roots)))
    for number, text in comments(path):
        for span in pattern.findall(text):
            span = span.rstrip(".")
            if span.startswith(GENERATED) or not is_path(span, roots):
                continue
            if not exists(span, path):
                yield number, f"comment names {span}, which does not exist"


def main():
    roots = top_level()
    failures = [
        f"{doc.relative_to(ROOT)}:{number}: {what}"
        for doc in documents()
        for number, what in broken(doc, roots)
    ] + [
        f"{path.relative_to(ROOT)}:{number}: {what}"
        for path in build_files()
        if path.is_file()
        for number, what in cited(path)
    ] + [
        f"{path.relative_to(ROOT)}:{number}: {what}"
        for path in code_files()
        for number, what in named_in_comments(path, roots)
    ]
    for failure in failures:
        print(failure)
    if failures:
        sys.stdout.flush()
        print(f"{len(failures)} broken references (README.md, docs/, build files, code comments)", file=sys.stderr)
        return 1
    print("docs links: every relative link and path in README.md and docs/, every doc the build files cite, every path a code comment names, exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
