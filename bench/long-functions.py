#!/usr/bin/env python3
"""Lists functions longer than 80 lines in the crates' and the binary's
sources (test modules and `*_tests.rs` files excepted). Parsers' match
tables, listed in PARSERS, may be longer. Exit status 1 when any other is.

usage: bench/long-functions.py [LIMIT]
"""

import os
import re
import sys

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 80
# (file, function): one arm per input form, which reads best as one table.
PARSERS = {
    ("crates/compose/src/yaml/parse.rs", "event"),
    ("crates/compose/src/units.rs", "scaled_decimal"),
    ("crates/compose/src/ports.rs", "parse_port_spec"),
}
FN = re.compile(
    r'^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(unsafe\s+)?(const\s+)?(extern\s+"C"\s+)?fn\s+(\w+)'
)


def code(line):
    """The line without string and char literals and comments."""
    line = re.sub(r'"([^"\\]|\\.)*"', '""', line)
    line = re.sub(r"'([^'\\]|\\.)'", "''", line)
    return line.split("//")[0]


def functions(path):
    """(name, first line, length) of each function before the test module."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("#[cfg(test)]"):
            return
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            s = code(lines[j])
            for ch in s:
                if ch == "{":
                    depth, started = depth + 1, True
                elif ch == "}":
                    depth -= 1
            if started and depth == 0:
                break
            if not started and s.rstrip().endswith(";"):
                break
            j += 1
        yield m.group(7), i + 1, j - i + 1
        i = j + 1 if started else i + 1


def sources():
    roots = ["src"] + [os.path.join("crates", c, "src") for c in sorted(os.listdir("crates"))]
    for root in roots:
        for d, _, files in os.walk(root):
            for f in sorted(files):
                if f.endswith(".rs") and not f.endswith("_tests.rs"):
                    yield os.path.join(d, f)


def main():
    too_long = []
    for path in sources():
        for name, line, length in functions(path):
            if length > LIMIT and (path, name) not in PARSERS:
                too_long.append((length, path, line, name))
    for length, path, line, name in sorted(too_long, reverse=True):
        print(f"{path}:{line}: fn {name} is {length} lines")
    print(f"{len(too_long)} function(s) over {LIMIT} lines")
    return 1 if too_long else 0


if __name__ == "__main__":
    sys.exit(main())
