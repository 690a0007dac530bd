"""The import graph of src/dynface: floors, circles, and a picture of the layers.

    python scripts/import_graph.py                     # prints floors and circles
    python scripts/import_graph.py --png docs/imports.png --layers-png docs/layers.png --check

Every import of a dynface module counts, also those inside functions (a lazy import is still a
dependency). Floor 0 holds modules that import no other dynface module; a module's floor is one
above the highest floor it imports. Modules in a circle (a strongly connected component) share a
floor and are listed. `--check` exits 1 when there is a circle or an import from a lower package
layer to a higher one (LAYERS below).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "dynface"
# package layers, bottom to top: a module may import only from its own layer or lower ones
LAYERS = [("core", "errors"), ("networks", "sampling", "synth"), ("modelset",), ("pipeline", "face", "metrics"),
          ("training", "jobs"), ("cli", "web", "engines")]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(stem + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` depends on pkg.sub (as `import pkg.sub` does), other names on pkg
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith(PKG):
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / PKG).rglob("*.py")}
    mods = set(files)
    return {m: {d for d in imports_of(p, m, mods) if d != PKG} for m, p in files.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
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

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def floors(g: dict[str, set[str]]) -> dict[str, int]:
    comp_of = {m: m for m in g}
    for c in circles(g):
        for m in c:
            comp_of[m] = c[0]
    memo: dict[str, int] = {}

    def floor(m, seen=()):
        c = comp_of[m]
        if c in memo:
            return memo[c]
        deps = {comp_of[d] for mm in g if comp_of[mm] == c for d in g[mm]} - {c}
        memo[c] = 1 + max((floor(d) for d in deps), default=-1)
        return memo[c]

    return {m: floor(m) for m in g}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None


def upward(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for m, deps in g.items():
        lm = layer_of(m)
        for d in deps:
            ld = layer_of(d)
            if lm is not None and ld is not None and ld > lm:
                bad.append((m, d))
    return sorted(bad)


def draw(g, fl, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_floor: dict[int, list[str]] = {}
    for m, f in fl.items():
        by_floor.setdefault(f, []).append(m)
    width = max(len(v) for v in by_floor.values())
    fig, ax = plt.subplots(figsize=(max(8, 1.7 * width), 1.0 + 1.1 * len(by_floor)))
    pos = {}
    for f, ms in sorted(by_floor.items()):
        for i, m in enumerate(sorted(ms)):
            pos[m] = ((i + 0.5) * width / len(ms), f)
    for m, deps in g.items():
        for d in deps:
            (x0, y0), (x1, y1) = pos[m], pos[d]
            ax.annotate("", xy=(x1, y1 + 0.12), xytext=(x0, y0 - 0.12),
                        arrowprops=dict(arrowstyle="->", color="#999", lw=0.5, alpha=0.6))
    cmap = plt.get_cmap("tab10")
    for m, (x, y) in pos.items():
        layer = layer_of(m)
        ax.text(x, y, m.removeprefix(PKG + "."), ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.25", fc=cmap(layer % 10) if layer is not None else "#eee", alpha=0.35))
    ax.set_ylim(-0.6, max(by_floor) + 0.6)
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_yticks(sorted(by_floor), [f"floor {f}" for f in sorted(by_floor)])
    ax.set_xticks([])
    for s in ("top", "right", "bottom"):
        ax.spines[s].set_visible(False)
    ax.set_title("dynface imports (arrows point to what a module imports; colour = package layer)", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def package_of(module: str) -> str:
    """dynface.core.kernels -> core; dynface.pipeline -> pipeline."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def draw_layers(g, png: Path) -> None:
    """One box per package, one row per layer (LAYERS, bottom up), one arrow per package dependency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = {(package_of(m), package_of(d)) for m, deps in g.items() for d in deps}
    edges = {(a, b) for a, b in edges if a != b and a != PKG and b != PKG}
    n_mod = {}
    for m in g:
        n_mod[package_of(m)] = n_mod.get(package_of(m), 0) + 1
    pos = {}
    width = max(len(names) for names in LAYERS)
    for layer, names in enumerate(LAYERS):
        for i, name in enumerate(names):
            pos[name] = ((i + 0.5) * width / len(names), layer)
    fig, ax = plt.subplots(figsize=(2.4 * width + 2, 1.1 * len(LAYERS) + 1))
    for a, b in sorted(edges):
        if a in pos and b in pos:
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                        arrowprops=dict(arrowstyle="->", color="#777", lw=0.8, alpha=0.7,
                                        connectionstyle="arc3,rad=0.08" if y0 != y1 else "arc3,rad=0.3"))
    cmap = plt.get_cmap("tab10")
    for name, (x, y) in pos.items():
        label = name if name == "pipeline" or name == "errors" else f"{name}/"
        ax.text(x, y, f"{label}\n{n_mod.get(name, 0)} module(s)", ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.4", fc=cmap(y % 10), alpha=0.35))
    ax.set_ylim(-0.6, len(LAYERS) - 0.4)
    ax.set_xlim(-0.1, width + 0.1)
    ax.set_yticks(range(len(LAYERS)), [f"layer {i}" for i in range(len(LAYERS))])
    ax.set_xticks([])
    for s in ("top", "right", "bottom"):
        ax.spines[s].set_visible(False)
    ax.set_title("dynface package layers (arrows: package imports package; none points up)", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", default=None, help="draw every module by floor")
    ap.add_argument("--layers-png", default=None, help="draw the packages by layer")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    g = graph()
    fl = floors(g)
    circ = circles(g)
    up = upward(g)
    print(f"{len(g)} modules, {sum(len(v) for v in g.values())} imports, {max(fl.values()) + 1} floors, "
          f"{len(circ)} circle(s), {len(up)} upward import(s)")
    for f in sorted(set(fl.values())):
        print(f"floor {f}: " + ", ".join(sorted(m.removeprefix(PKG + ".") for m in g if fl[m] == f)))
    for c in circ:
        print("circle: " + " <-> ".join(c))
    for m, d in up:
        print(f"upward: {m} imports {d}")
    if a.png:
        draw(g, fl, Path(a.png))
    if a.layers_png:
        draw_layers(g, Path(a.layers_png))
    return 1 if a.check and (circ or up) else 0


if __name__ == "__main__":
    sys.exit(main())
