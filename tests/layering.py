#!/usr/bin/env python3
"""Fails when a module includes a header of a module it may not use.

    python3 tests/layering.py SOURCE_DIR

The rules are docs/architecture.md's table "Who may include whom": each row names a module and
the modules it may use (before a ';'), plus single headers it may use in backticks after it
(`runtime/rootless.hpp`). Every library has the repository root on its include path, so an
upward include of an inline function or a template would compile and link; this check is what
stops it. A module may always include its own headers.
"""

import os
import re
import sys


def rules(doc):
    allowed = {}
    in_table = False
    for line in open(doc, encoding="utf-8"):
        if line.startswith("| module"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if not in_table or line.startswith("|--"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        module, uses = cells[0], cells[1]
        head, _, tail = uses.partition(";")
        mods = {m.strip() for m in head.split(",") if re.fullmatch(r"[a-z]+", m.strip())}
        headers = set(re.findall(r"`([a-z]+/[a-z_]+\.hpp)`", tail))
        allowed[module] = (mods, headers)
    return allowed


def module_of_include(path):
    # "factory/oci/layout.hpp" -> oci; "cache/lock.hpp" -> cache
    parts = path.split("/")
    if parts[0] == "factory" and len(parts) > 2:
        return parts[1], "/".join(parts[1:])
    if parts[0] == "cache":
        return "cache", path
    return None, None


def main():
    root = sys.argv[1]
    allowed = rules(os.path.join(root, "docs", "architecture.md"))
    if "builder" not in allowed or "util" not in allowed:
        print("layering: could not read the table of docs/architecture.md")
        return 1
    sources = []
    for top in ("factory", "cache"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith((".hpp", ".cpp")):
                    sources.append(os.path.join(dirpath, f))
    bad = []
    for src in sorted(sources):
        rel = os.path.relpath(src, root)
        parts = rel.split(os.sep)
        module = "cache" if parts[0] == "cache" else parts[1]
        if module not in allowed:
            continue  # main.cpp, init/: not a library of the table
        mods, headers = allowed[module]
        for n, line in enumerate(open(src, encoding="utf-8"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            target, header = module_of_include(m.group(1))
            if target is None or target == module or target in mods or header in headers:
                continue
            bad.append(f"{rel}:{n}: {module} includes {m.group(1)} ({target} is not below it)")
    for b in bad:
        print(b)
    if bad:
        print(f"layering: {len(bad)} upward include(s); see docs/architecture.md")
        return 1
    print(f"layering: {len(sources)} files, every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
