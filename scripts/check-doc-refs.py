#!/usr/bin/env python3
"""Every file that a document or a code comment points to exists, and the code map names every
source file.

Scans the tracked Markdown files (outside fenced code blocks) and the comment lines of tracked
Rust, shell, Python, YAML and TOML files for file references such as `server/README.md`,
`src/verify.rs` or `SERVER_API.md`, and fails listing each one that names no tracked file.

A reference resolves when it names a tracked file or directory relative to the repository root,
to the referring file's folder or any folder above it, or (for a bare file name) when some
tracked file has that name. Paths under folders that only runs create (bench/work, .demo,
target) are not checked. Exit 1 on any dangling reference, with file:line for each.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import PurePosixPath

EXTS = "md|rs|py|sh|toml|yaml|yml|json|lua|txt"
REF = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:" + EXTS + r"))(?![\w/-])")
CHECKED_BARE = {".rs", ".md", ".sh", ".py"}
GENERATED = ("bench/work/", "work/", ".demo/", "target/", "fuzz/target/", "fuzz/artifacts/")
COMMENT = {
    ".rs": re.compile(r"^\s*//[/!]?(.*)$"),
    ".sh": re.compile(r"^\s*#(.*)$"),
    ".py": re.compile(r"^\s*#(.*)$"),
    ".toml": re.compile(r"^\s*#(.*)$"),
    ".yaml": re.compile(r"^\s*#(.*)$"),
    ".yml": re.compile(r"^\s*#(.*)$"),
}


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], check=True, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line]


def text_lines(path: str) -> list[tuple[int, str]]:
    """(line number, text to scan) for the parts of a file that are prose."""
    suffix = PurePosixPath(path).suffix
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return []
    picked = []
    if suffix == ".md":
        fenced = False
        for no, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if not fenced:
                picked.append((no, line))
    elif suffix in COMMENT:
        pattern = COMMENT[suffix]
        for no, line in enumerate(lines, 1):
            m = pattern.match(line)
            if m:
                picked.append((no, m.group(1)))
    return picked


def main() -> int:
    files = tracked()
    paths = set(files)
    dirs = {str(p) for f in files for p in PurePosixPath(f).parents}
    names = {PurePosixPath(f).name for f in files}

    def resolves(ref: str, source: str) -> bool:
        if ref.startswith(GENERATED):
            return True
        if "/" not in ref:
            # Bare code and document names must exist somewhere; other bare names (`orders.csv`,
            # `a.json`) are usually examples of a user's files.
            return ref in names or PurePosixPath(ref).suffix not in CHECKED_BARE
        for base in [PurePosixPath(source).parent, *PurePosixPath(source).parent.parents]:
            candidate = os.path.normpath((base / ref).as_posix())
            if candidate in paths or candidate in dirs:
                return True
        # A path given from inside a crate (`src/verify.rs`, `tests/format/edges.rs`).
        return any(f.endswith("/" + ref) for f in files)

    dangling = []
    for source in files:
        for no, text in text_lines(source):
            for m in REF.finditer(text):
                ref = m.group(1).rstrip(".")
                if not resolves(ref, source):
                    dangling.append(f"{source}:{no}: {ref}")
    # The code map: every Rust source file of a crate is named in ARCHITECTURE.md.
    arch = open("ARCHITECTURE.md", encoding="utf-8").read()
    for f in files:
        parts = PurePosixPath(f).parts
        if f.endswith(".rs") and len(parts) > 2 and parts[1] == "src":
            name = PurePosixPath(f).name
            inner = "/".join(parts[2:])
            if name not in ("lib.rs", "main.rs", "mod.rs") and inner not in arch and name not in arch:
                dangling.append(f"ARCHITECTURE.md: the code map does not name {f}")
    if dangling:
        print("dangling references and code-map gaps:", file=sys.stderr)
        for d in dangling:
            print("  " + d, file=sys.stderr)
        return 1
    print(f"doc references: every file named in {len(files)} tracked files exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
