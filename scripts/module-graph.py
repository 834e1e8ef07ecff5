#!/usr/bin/env python3
"""The module graph of herald's library, and the check that it has no cycles.

Reads every `src/**/*.rs` of the library (`src/lib.rs` and the modules it
declares; `src/main.rs` is the binary and only uses the library), finds the
module paths each file names (`use crate::…`, `use super::…`, `self::…`,
grouped `use` trees, and `crate::…`/`super::…` paths written inline in code),
and resolves each to the module file that defines it, following `use`
re-exports (`render::Markdown` is `render::markdown`). Comments, string
literals and `#[cfg(test)]` items are ignored.

It fails (exit 1) when modules that sit side by side depend on each other in a
circle: for every module (the crate root included), the graph of its child
modules, where a child depends on a sibling when any file in its subtree
imports anything in the sibling's subtree, must be acyclic. So
`render::issue → render::markdown → render::issue` fails, and so does
`schedule → commands::send → … → schedule` (top-level `schedule ↔
commands`). A parent and its own children may use each other (a `mod.rs`
declares its children and they use its shared types).

Writes the file-level graph as Graphviz DOT to `target/module-graph.dot`
(honours CARGO_TARGET_DIR); edges that form a reported cycle are red.
Render it with `dot -Tsvg target/module-graph.dot -o module-graph.svg`.

Usage: scripts/module-graph.py [--dot PATH] [--quiet]
Python 3 standard library only.
"""

import argparse
import os
import re
import sys
from collections import defaultdict

# File-level edges (importer, imported) tolerated for now, each with the
# reason. Every entry is a known cycle waiting for a fix; an entry that no
# longer matches an edge is reported so it can be deleted.
ALLOWED_EDGES = {
    ("schedule", "commands::send"): "run_due sends through the CLI's live send; moves into the library",
    ("commands::send", "commands::abort"): "the abort watch lives with the command; moves into the library",
}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text):
    """Blanks out comments, string and char literals, keeping line breaks."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.compile(r'b?r(#*)"').match(text, i)
            if m:
                end = text.find('"' + m.group(1), m.end())
                end = n if end < 0 else end + 1 + len(m.group(1))
                out.append(blank(text[i:end]))
                i = end
            elif text.startswith('b"', i) or text.startswith("b'", i):
                out.append(" ")
                i += 1
            else:
                out.append(c)
                i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 2 if text[i + 2 : i + 3] != "'" else i + 3)
                j = n if j < 0 else j
                out.append(blank(text[i : j + 1]))
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                out.append(blank(text[i : i + 3]))
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


ATTR = re.compile(r"#\s*!?\s*\[")


def skip_attrs_ws(code, i):
    while True:
        while i < len(code) and code[i].isspace():
            i += 1
        m = ATTR.match(code, i)
        if not m:
            return i
        depth, j = 0, m.end() - 1
        while j < len(code):
            if code[j] == "[":
                depth += 1
            elif code[j] == "]":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def drop_test_items(code):
    """Blanks out items under `#[cfg(test)]`; returns (code, test-only child modules)."""
    test_mods = set()
    while True:
        m = CFG_TEST.search(code)
        if not m:
            return code, test_mods
        start = m.start()
        i = skip_attrs_ws(code, m.end())
        head = re.compile(r"(pub(\s*\([^)]*\))?\s+)?(\w+)(\s+(" + IDENT + r"))?").match(code, i)
        end = len(code) - 1
        if head and head.group(3) == "use":
            end = code.find(";", i)
        elif head and head.group(3) == "mod" and re.compile(r"\s*;").match(code, head.end()):
            test_mods.add(head.group(5))
            end = code.find(";", head.end())
        else:
            depth = 0
            for j in range(i, len(code)):
                ch = code[j]
                if ch in "([":
                    depth += 1
                elif ch in ")]":
                    depth -= 1
                elif depth == 0 and ch == ";":
                    end = j
                    break
                elif depth == 0 and ch == "{":
                    end = matching_brace(code, j)
                    break
        code = code[:start] + "".join("\n" if c == "\n" else " " for c in code[start : end + 1]) + code[end + 1 :]


def split_top(s, sep=","):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def use_tree(tree, prefix=()):
    """Expands a use tree into (segments, bound name or None for globs)."""
    tree = tree.strip()
    if tree.startswith("::"):
        tree = tree[2:].strip()
    if tree.startswith("{") and tree.endswith("}"):
        out = []
        for part in split_top(tree[1:-1]):
            out.extend(use_tree(part, prefix))
        return out
    m = re.compile(r"(" + IDENT + r")\s*::\s*(.*)$", re.S).match(tree)
    if m:
        return use_tree(m.group(2), prefix + (m.group(1),))
    if tree == "*":
        return [(prefix, None)]
    m = re.compile(r"(" + IDENT + r")(\s+as\s+(" + IDENT + r"))?$").match(tree)
    if not m:
        return []
    name = m.group(1)
    if name == "self":
        return [(prefix, m.group(3) or (prefix[-1] if prefix else None))]
    return [(prefix + (name,), m.group(3) or name)]


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path (tuple) -> file path
        self.children = defaultdict(set)  # module -> child names
        self.imports = defaultdict(dict)  # module -> name -> absolute segments
        self.items = defaultdict(set)  # module -> item names defined there
        self.macros = {}  # #[macro_export] macro -> module
        self.refs = []  # (module, absolute segments, line)
        self.test_only = set()
        self._load((), os.path.join(src, "lib.rs"))

    def _load(self, module, path):
        self.files[module] = path
        with open(path, encoding="utf-8") as f:
            raw = f.read()
        code, test_mods = drop_test_items(strip_code(raw))
        base = os.path.dirname(path) if os.path.basename(path) in ("lib.rs", "mod.rs") else path[:-3]
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*;", code):
            name = m.group(1)
            child = module + (name,)
            self.children[module].add(name)
            for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(cand):
                    self._load(child, cand)
                    break
            else:
                sys.exit(f"module-graph: no file for module {'::'.join(child)} (from {path})")
        for m in re.finditer(
            r"\b(?:fn|struct|enum|trait|type|const|static|union)\s+(" + IDENT + r")", code
        ):
            self.items[module].add(m.group(1))
        for m in re.finditer(r"#\s*\[\s*macro_export\s*\]\s*macro_rules!\s*(" + IDENT + ")", code):
            self.macros[m.group(1)] = module
        self.test_only |= {module + (t,) for t in test_mods}
        self._scan(module, code)

    def _absolute(self, module, segs):
        """Makes a path absolute from the crate root, or None when external."""
        if not segs:
            return None
        head = segs[0]
        if head == "crate":
            return list(segs[1:])
        if head == "self":
            return list(module) + list(segs[1:])
        if head == "super":
            cur = list(module)
            i = 0
            while i < len(segs) and segs[i] == "super":
                if not cur:
                    return None
                cur.pop()
                i += 1
            return cur + list(segs[i:])
        # 2018 uniform paths: a child module in scope.
        if head in self.children[module]:
            return list(module) + list(segs)
        return None

    def _scan(self, module, code):
        line_of = lambda pos: code.count("\n", 0, pos) + 1  # noqa: E731
        use_re = re.compile(r"\b(?:pub\s*(?:\([^)]*\))?\s*)?use\s+([^;]+);")
        spans = []
        for m in use_re.finditer(code):
            spans.append((m.start(), m.end()))
            for segs, name in use_tree(m.group(1)):
                absolute = self._absolute(module, segs)
                if absolute is None:
                    continue
                if name is not None:
                    self.imports[module][name] = absolute
                self.refs.append((module, absolute, line_of(m.start())))
        path_re = re.compile(r"\b(?:crate|super|self)(?:\s*::\s*" + IDENT + r")+")
        for m in path_re.finditer(code):
            if any(a <= m.start() < b for a, b in spans):
                continue
            segs = [s.strip() for s in m.group(0).split("::")]
            absolute = self._absolute(module, segs)
            if absolute is not None:
                self.refs.append((module, absolute, line_of(m.start())))

    def resolve(self, segs, depth=0):
        """The module file that defines what an absolute path names."""
        cur = ()
        for i, seg in enumerate(segs):
            if seg in self.children[cur]:
                cur = cur + (seg,)
                continue
            if depth < 16 and seg in self.imports[cur] and seg not in self.items[cur]:
                target = self.imports[cur][seg] + list(segs[i + 1 :])
                return self.resolve(target, depth + 1)
            if not cur and seg in self.macros:
                return self.macros[seg]
            return cur
        return cur


def name(module):
    return "::".join(module) or "crate"


def within(module, root):
    return module[: len(root)] == root


def sccs(nodes, edges):
    """Tarjan's strongly connected components, in a stable order."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def cycles_in(comp, edges, limit=20):
    """The simple cycles through a strongly connected component (up to limit)."""
    comp, found = sorted(comp), []
    for i, start in enumerate(comp):
        allowed = set(comp[i:])  # each cycle once, from its smallest node

        def walk(path):
            for w in sorted(edges.get(path[-1], ())):
                if len(found) >= limit:
                    return
                if w == start:
                    found.append(path + [start])
                elif w in allowed and w not in path:
                    walk(path + [w])

        walk([start])
    return found


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dot", default=os.path.join(target, "module-graph.dot"))
    ap.add_argument("--quiet", action="store_true", help="print only problems")
    args = ap.parse_args()

    crate = Crate(os.path.join(root, "src"))
    modules = set(crate.files) - {
        m for m in crate.files if any(within(m, t) for t in crate.test_only)
    }

    # File-level edges with the places that make them.
    evidence = defaultdict(list)
    for module, segs, line in crate.refs:
        if module not in modules:
            continue
        to = crate.resolve(segs)
        if to != module and to in modules:
            evidence[(module, to)].append(f"{os.path.relpath(crate.files[module], root)}:{line}")
    allowed = {(tuple(a.split("::")), tuple(b.split("::"))) for a, b in ALLOWED_EDGES}
    stale = sorted(e for e in allowed if e not in evidence)
    checked = {e: v for e, v in evidence.items() if e not in allowed}

    problems, cycle_edges = [], set()
    parents = sorted({m[:-1] for m in modules if m})
    for parent in parents:
        kids = {parent + (c,) for c in crate.children[parent]} & modules
        lifted = defaultdict(set)  # sibling -> siblings it depends on
        why = defaultdict(list)
        for (a, b), places in checked.items():
            if not (within(a, parent) and within(b, parent)) or a == parent or b == parent:
                continue
            ka, kb = a[: len(parent) + 1], b[: len(parent) + 1]
            if ka != kb and ka in kids and kb in kids:
                lifted[ka].add(kb)
                why[(ka, kb)].append((a, b, places))
        for comp in sccs(kids, lifted):
            if len(comp) < 2:
                continue
            lines = [f"import cycle between {', '.join(name(m) for m in comp)}:"]
            for cycle in cycles_in(comp, lifted):
                lines.append(f"  {' -> '.join(name(m) for m in cycle)}")
            for ka in comp:
                for kb in sorted(lifted[ka] & set(comp)):
                    for a, b, places in sorted(why[(ka, kb)]):
                        cycle_edges.add((a, b))
                        lines.append(f"    {name(a)} -> {name(b)}  ({', '.join(sorted(set(places))[:3])})")
            problems.append("\n".join(lines))

    os.makedirs(os.path.dirname(os.path.abspath(args.dot)), exist_ok=True)
    with open(args.dot, "w", encoding="utf-8") as f:
        f.write("// herald's module graph (scripts/module-graph.py); red: a cycle.\n")
        f.write('digraph herald {\n  rankdir=LR;\n  node [shape=box, fontname="monospace"];\n')
        tops = sorted({m[:1] for m in modules if m})
        for top in tops:
            members = sorted(m for m in modules if within(m, top))
            if len(members) > 1:
                f.write(f'  subgraph "cluster_{name(top)}" {{\n    label="{name(top)}";\n')
                for m in members:
                    f.write(f'    "{name(m)}";\n')
                f.write("  }\n")
            else:
                f.write(f'  "{name(top)}";\n')
        for a, b in sorted(evidence):
            style = ' [color=red, penwidth=2]' if (a, b) in cycle_edges else ""
            style = ' [style=dashed, color=orange]' if (a, b) in allowed else style
            f.write(f'  "{name(a)}" -> "{name(b)}"{style};\n')
        f.write("}\n")

    for a, b in stale:
        print(f"module-graph: allowed edge {name(a)} -> {name(b)} no longer exists: delete it from ALLOWED_EDGES", file=sys.stderr)
    for (a, b) in sorted(allowed - set(stale)):
        print(f"module-graph: tolerated for now: {name(a)} -> {name(b)} ({ALLOWED_EDGES[(name(a), name(b))]})", file=sys.stderr)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"module-graph: {len(problems)} cycle(s) between sibling modules; graph in {args.dot}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"module-graph: {len(modules)} modules, {len(evidence)} edges, no cycles; graph in {args.dot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
