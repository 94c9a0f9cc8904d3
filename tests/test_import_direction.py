"""Dependencies point one way: study -> search_spaces, analysis -> trainables -> the metrics.

`analysis.metrics` is a leaf (it imports nothing else of the project), so the training core and
the analysis both import it downward; the training core imports no other part of `analysis`,
and nothing below `study` imports `study`. Each package is imported in a fresh interpreter
and the project modules it pulled in are compared with the rule.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("study", "search_spaces", "analysis", "trainables")
MODULES = {  # every module of the package, imported together
    name: sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                 for p in (ROOT / name).rglob("*.py") if p.name != "__init__.py")
    for name in PACKAGES
}
MODULES["analysis.metrics"] = [m for m in MODULES["analysis"] if m.startswith("analysis.metrics")]
# What each may pull in besides itself.
ALLOWED = {
    "analysis.metrics": set(),
    "trainables": {"analysis.metrics"},
    "analysis": {"trainables"},
    "search_spaces": {"trainables"},
}


def imported_project_modules(modules: list[str]) -> list[str]:
    code = (f"import importlib, json, sys; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{PACKAGES!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
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
