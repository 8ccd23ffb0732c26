"""The sub-packages import only what their ``__init__`` docstring says they may: the layers
that make the data flow one way (cli -> config -> sweep -> study, training, checkpoints,
tracking -> console)."""

from __future__ import annotations

import ast
from pathlib import Path

import hposweep

PACKAGE = Path(hposweep.__file__).parent

# package (or top-level module) -> the hposweep packages and modules it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "interrupts": set(),
    "results": set(),
    "_testing": set(),
    "objectives": {"errors", "results"},
    "config": {"errors", "objectives"},
    "api": {"config"},
    "console": {"results"},
    "checkpoints": {"_testing", "errors", "objectives"},
    "data": {"api", "config", "errors"},
    "study": {"_testing", "checkpoints", "config", "data", "errors", "objectives", "results"},
    "training": {"_testing", "api", "checkpoints", "config", "errors", "objectives"},
    "tracking": {"_testing", "checkpoints", "config", "errors", "interrupts", "objectives",
                 "reports", "results", "study"},
    "reports": {"__version__", "checkpoints", "config", "errors", "objectives", "results",
                "study", "tracking", "training"},
    "workers": {"checkpoints", "config", "console", "errors", "objectives", "results"},
    "sweep": {"_testing", "api", "checkpoints", "config", "console", "data", "errors",
              "interrupts", "objectives", "reports", "results", "study", "tracking", "training"},
    "cli": {"config", "console", "errors", "interrupts", "reports", "study", "sweep", "workers"},
    "__main__": {"cli"},
}


def imports_of(path: Path) -> set[str]:
    """The hposweep packages (or top-level modules) a file imports, lazily or not."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hposweep":
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("hposweep.")}
    return found


def test_every_package_imports_only_its_lower_layers() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        owner = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
        if owner == "__init__":
            continue
        assert owner in ALLOWED, f"{owner}: a new package; give it its layer in ALLOWED"
        extra = imports_of(path) - ALLOWED[owner] - {owner}
        if extra:
            wrong.append(f"{path.relative_to(PACKAGE)} imports {sorted(extra)}")
    assert not wrong, "\n".join(wrong)


def test_every_sub_package_says_its_job() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 8, f"{init.parent.name}/__init__.py: no docstring"
