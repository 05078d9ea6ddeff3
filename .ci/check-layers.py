#!/usr/bin/env python3
"""Fail on any import cycle between the top-level modules of src/, and on any import that goes
up the layers (a lower module naming a higher one).

A module is a file `src/X.rs` or a folder `src/X/`; its imports are the `crate::Y` paths in its
code (comments and strings are skipped). The layers, lowest first, as README.md "Design" draws
them; modules in one layer may not import each other in a cycle either.
"""
import pathlib
import re
import sys

LAYERS = [
    ["clock", "secret", "yaml"],
    ["manifest"],
    ["router"],
    ["plan", "gate"],
    ["config"],
    ["git", "forge", "cluster", "metrics"],
    ["rollout"],
    ["report"],
    ["exit"],
    ["cli", "cmd"],
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def strip(code: str) -> str:
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', code)


def module_of(path: pathlib.Path, src: pathlib.Path) -> str:
    rel = path.relative_to(src)
    return rel.parts[0].removesuffix(".rs")


def main() -> int:
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    edges: dict[str, dict[str, set[str]]] = {}
    for path in sorted(src.rglob("*.rs")):
        mod = module_of(path, src)
        if mod in ("lib", "main"):
            continue
        code = strip(path.read_text())
        # `crate::x`, and `use crate::{x, y::z}` groups.
        names = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", code))
        for group in re.findall(r"\bcrate::\{([^}]*)\}", code):
            names |= set(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
        for other in names:
            if other != mod and ((src / f"{other}.rs").exists() or (src / other).is_dir()):
                edges.setdefault(mod, {}).setdefault(other, set()).add(
                    str(path.relative_to(src.parent))
                )
    problems = []
    for mod, deps in sorted(edges.items()):
        if mod not in RANK:
            problems.append(f"src/{mod}: not in a layer of .ci/check-layers.py")
            continue
        for other, files in sorted(deps.items()):
            if other in RANK and RANK[other] > RANK[mod]:
                problems.append(
                    f"{mod} (layer {RANK[mod]}) imports {other} (layer {RANK[other]}): "
                    + ", ".join(sorted(files))
                )
    # Cycles: strongly connected components with more than one module.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
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
                sccs.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in sccs:
        problems.append("import cycle: " + " <-> ".join(comp))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"layers: {len(edges)} modules, no cycle, no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
