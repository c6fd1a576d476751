#!/usr/bin/env python3
"""Lists the import cycles between the files of each crate.

Every `crate::a::b` and `super::x` path in a file (in `use` items and inline)
is an edge from that file's module to the deepest module it names that is a
file of its own. A group of files that reach each other is a cycle; each is
printed with its edges. Exit status 1 when there is any.

usage: bench/import-cycles.py [CRATE_SRC_DIR...]   (default: every crate)
"""

import os
import re
import sys

PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::\w+)*)::\{([^;]*)\};", re.S)


def modules(src):
    """module path (tuple) -> file, for the .rs files under src."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            out[tuple(parts)] = os.path.join(root, f)
    return out


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def edges(src):
    mods = modules(src)
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        # `mod tests` blocks test the file itself; their imports are not seams.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", text)[0]
        is_dir_module = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        here = mod if is_dir_module else mod[:-1]

        def resolve(root, tail):
            names = [n for n in tail.split("::") if n]
            base = () if root == "crate" else here
            while names and names[0] == "super":
                base, names = base[:-1], names[1:]
            full = base + tuple(names)
            for i in range(len(full), 0, -1):
                if full[:i] in mods:
                    return full[:i]
            return None

        targets = []
        for m in USE_GROUP.finditer(text):
            root, prefix, group = m.group(1), m.group(2), m.group(3)
            for item in re.split(r"[,{}]", group):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    targets.append(resolve(root, prefix + "::" + item))
                elif item == "self":
                    targets.append(resolve(root, prefix))
        for m in PATH.finditer(text):
            targets.append(resolve(m.group(1), m.group(2)))
        for t in targets:
            if t is not None and t != mod and t != ():
                graph[mod].add(t)
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(mod):
    return "::".join(mod) or "(root)"


def main():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    dirs = sys.argv[1:] or [os.path.join(top, "src")] + sorted(
        os.path.join(top, "crates", c, "src") for c in os.listdir(os.path.join(top, "crates"))
    )
    found = 0
    for src in dirs:
        graph = edges(src)
        for comp in cycles(graph):
            found += 1
            members = set(comp)
            print(f"{os.path.relpath(src, top)}: cycle between {', '.join(name(m) for m in comp)}")
            for a in comp:
                for b in sorted(graph[a] & members):
                    print(f"    {name(a)} -> {name(b)}")
    print(f"{found} import cycle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
