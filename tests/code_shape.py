"""The shape of emflow's code: long functions and modules, the length of ``fit``, capability probes in the loop.

    python -m tests.code_shape

Prints every function over 60 lines and every module over 400 lines under ``emflow/``, the
lines of ``emflow.train.fit``, and the capability probes in ``emflow/train/`` (``hasattr``, and
``getattr`` with a default).
"""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "emflow"


def functions(path: pathlib.Path):
    """``(qualified name, lines)`` of every function and method in ``path`` (docstring included)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def main() -> dict:
    files = sorted(ROOT.rglob("*.py"))
    long_functions = [(str(p.relative_to(ROOT.parent)), name, n) for p in files for name, n in functions(p) if n > 60]
    long_modules = [(str(p.relative_to(ROOT.parent)), len(p.read_text().splitlines())) for p in files
                    if len(p.read_text().splitlines()) > 400]
    fit_lines = dict(functions(ROOT / "train" / "loop.py"))["fit"]
    probes = [(str(p.relative_to(ROOT.parent)), node.lineno, node.func.id)  # hasattr, or getattr with a default
              for p in sorted((ROOT / "train").glob("*.py")) for node in ast.walk(ast.parse(p.read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and (node.func.id == "hasattr" or (node.func.id == "getattr" and len(node.args) == 3))]
    print(f"modules: {len(files)}; functions over 60 lines: {len(long_functions)}; modules over 400 lines: "
          f"{len(long_modules)}; fit: {fit_lines} lines (docstring included); hasattr/getattr in emflow/train: {len(probes)}")
    for row in long_functions + long_modules + probes:
        print("  ", *row)
    return {"long_functions": long_functions, "long_modules": long_modules, "fit_lines": fit_lines, "probes": probes}


if __name__ == "__main__":
    main()
