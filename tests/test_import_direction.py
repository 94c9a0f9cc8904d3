"""Dependencies point one way, package by package: study -> search_spaces, analysis ->
trainables -> metrics.

`metrics` is a leaf (it imports nothing else of the project), so the training core (which
scores packs) and the analysis (which reports) both import it downward; nothing imports
`study`, and `trainables` imports neither `analysis` nor `search_spaces`. Each package is
imported in a fresh interpreter and the project modules it pulled in are compared with the
rule.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("study", "search_spaces", "analysis", "trainables", "metrics")
MODULES = {  # every module of the package, imported together
    name: sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                 for p in (ROOT / name).rglob("*.py") if p.name != "__init__.py")
    for name in PACKAGES
}
# What each may pull in besides itself (what it imports, and what those import).
ALLOWED = {
    "metrics": set(),
    "trainables": {"metrics"},
    "analysis": {"trainables", "metrics"},
    "search_spaces": {"trainables", "metrics"},
}


def test_the_rule_has_no_cycle():
    """No package may pull in one that pulls it in (the rule above is a partial order)."""
    for package, allowed in ALLOWED.items():
        assert all(package not in ALLOWED.get(other, set()) for other in allowed), package


def imported_project_modules(modules: list[str]) -> list[str]:
    code = (f"import importlib, json, sys; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{PACKAGES!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow  # a fresh interpreter per package
@pytest.mark.parametrize("package", list(ALLOWED))
def test_imports_point_downward(package):
    own = {".".join(m.split(".")[:n]) for m in MODULES[package]
           for n in range(1, m.count(".") + 2)}  # the modules and the packages above them
    found = imported_project_modules(MODULES[package])
    allowed = ALLOWED[package]
    strays = [m for m in found if m not in own
              and not any(m == a or m.startswith(a + ".") for a in allowed)
              and not any(a.startswith(m + ".") for a in allowed)]  # a parent package
    assert strays == [], f"{package} imports {strays}"
