"""Layers: core imports no program; workers, operator and api never import each other."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {
    "core": ("goreports.workers", "goreports.operator", "goreports.api", "goreports.cli"),
    "workers": ("goreports.operator", "goreports.api", "goreports.cli"),
    "operator": ("goreports.workers", "goreports.api", "goreports.cli"),
    "api": ("goreports.workers", "goreports.operator", "goreports.cli"),
}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_layers() -> None:
    bad = []
    for folder, forbidden in FORBIDDEN.items():
        for f in (ROOT / folder).rglob("*.py"):
            for name in imports(f):
                if name.startswith(forbidden):
                    bad.append(f"{f.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_top_level_operator_package_on_path() -> None:
    import operator

    assert hasattr(operator, "itemgetter"), "the standard library's operator module is shadowed"


def test_python_dash_m_from_the_repository_root_still_works() -> None:
    """`python -m ...` puts the current folder first on sys.path; the `operator/` folder must not
    be a regular package there, or the interpreter itself breaks (collections imports operator)."""
    import subprocess
    import sys

    assert not (ROOT / "operator" / "__init__.py").exists()
    res = subprocess.run([sys.executable, "-S", "-m", "json.tool", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
