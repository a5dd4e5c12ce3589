"""Imports run one way: core -> schemas -> the parts -> citytel (the CLI).

A short AST walk over every module of the packages (imports inside functions and
relative imports included) finds each arrow from one of our packages to another and
fails on one that runs back up, on an arrow between parts that is not documented
(docs/development.md, "Layers"), and on a cycle among the parts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top; a package may import the layers below its own.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the ground", ("core",)),
    ("the contract", ("schemas",)),
    ("a part", ("ingest", "simulators", "api", "dashboards", "bench")),
    ("the CLI", ("citytel",)),
)
RANK = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}
LAYER_NAME = {package: name for name, packages in LAYERS for package in packages}
PARTS = LAYERS[2][1]
# The arrows among parts that exist on purpose; docs/development.md shows the same list.
PART_ARROWS = frozenset({("api", "ingest"), ("bench", "ingest"), ("bench", "api")})
_IMPORT_FUNCTIONS = frozenset({"import_module", "__import__"})
_BEYOND = "<beyond the top>"


@dataclass(frozen=True, slots=True)
class Arrow:
    """``source`` (a package) imports ``target`` at ``path``:``line``."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} -> {self.target}"


def _module_parts(path: str) -> list[str]:
    """``ingest/routes/x.py`` -> ``["ingest", "routes", "x"]``; a package is its folder."""
    parts = path.removesuffix(".py").split("/")
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(node: ast.AST, path: str) -> list[str]:
    """The absolute module names ``node`` imports (empty if it imports nothing)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if not node.level:
            return [node.module or ""]
        package = _module_parts(path)
        if not path.endswith("__init__.py"):
            package = package[:-1]
        if node.level > len(package):
            return [_BEYOND]
        base = package[: len(package) - node.level + 1]
        return [".".join([*base, node.module] if node.module else base)]
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) in _IMPORT_FUNCTIONS
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def arrows_in_source(source: str, path: str) -> list[Arrow]:
    """Every import of another package of ours in the module ``path`` (relative to the root)."""
    source_package = path.split("/", maxsplit=1)[0]
    arrows = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if not isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
            continue
        for name in _imported(node, path):
            target = name.split(".")[0]
            if target != source_package and (target in RANK or name == _BEYOND):
                arrows.append(Arrow(source_package, target, path, node.lineno))
    return sorted(arrows, key=lambda arrow: (arrow.path, arrow.line))


def arrows_in_tree(root: Path) -> list[Arrow]:
    """The arrows of every module of every layered package under ``root``."""
    arrows = []
    for package in RANK:
        for file in sorted((root / package).rglob("*.py")):
            path = file.relative_to(root).as_posix()
            arrows += arrows_in_source(file.read_text(encoding="utf-8"), path)
    return arrows


def layer_violations(arrows: list[Arrow]) -> list[str]:
    """One line per arrow that runs up, or sideways between parts without being documented."""
    problems = []
    for arrow in arrows:
        source, target = arrow.source, arrow.target
        if target not in RANK:
            problems.append(f"{arrow}: a relative import that leaves the top-level package")
        elif RANK[target] > RANK[source]:
            problems.append(
                f"{arrow}: {LAYER_NAME[source]} ({source}) imports {LAYER_NAME[target]}"
                f" ({target}), which is above it"
            )
        elif target in PARTS and source in PARTS and (source, target) not in PART_ARROWS:
            problems.append(
                f"{arrow}: an arrow between parts that is not in PART_ARROWS"
                " (add it there and to docs/development.md if it is meant)"
            )
    return problems


def part_cycles(arrows: list[Arrow]) -> list[str]:
    """One line per cycle among the parts, with where each of its arrows is."""
    where: dict[tuple[str, str], Arrow] = {}
    for arrow in arrows:
        if arrow.source in PARTS and arrow.target in PARTS:
            where.setdefault((arrow.source, arrow.target), arrow)
    cycles: set[tuple[str, ...]] = set()

    def walk(trail: list[str]) -> None:
        for source, target in where:
            if source != trail[-1]:
                continue
            if target in trail:
                cycle = trail[trail.index(target) :]
                start = cycle.index(min(cycle))  # one spelling per cycle
                cycles.add(tuple(cycle[start:] + cycle[:start]))
            else:
                walk([*trail, target])

    for part in PARTS:
        walk([part])
    problems = []
    for cycle in sorted(cycles):
        steps = list(zip(cycle, (*cycle[1:], cycle[0]), strict=True))
        problems.append(
            "a cycle among parts: "
            + " -> ".join([*cycle, cycle[0]])
            + " ("
            + "; ".join(str(where[step]) for step in steps)
            + ")"
        )
    return problems


def test_layers_imports_run_one_way() -> None:
    arrows = arrows_in_tree(ROOT)
    assert arrows, "the walk found no arrows at all: is ROOT right?"
    problems = layer_violations(arrows) + part_cycles(arrows)
    assert not problems, "imports against the layers (core -> schemas -> parts -> citytel):\n" + (
        "\n".join(problems)
    )


def test_layers_part_arrows_are_the_documented_ones() -> None:
    used = {(a.source, a.target) for a in arrows_in_tree(ROOT) if a.source in PARTS}
    unused = PART_ARROWS - used
    assert not unused, f"PART_ARROWS lists arrows no module has any more: {sorted(unused)}"
    docs = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    for source, target in PART_ARROWS:
        shown = f"{source} -> {target}" in docs
        assert shown, f"docs/development.md does not show {source} -> {target}"


def test_layers_cover_every_package() -> None:
    packages = {init.parent.name for init in ROOT.glob("*/__init__.py")}
    assert packages == set(RANK), f"packages in no layer: {sorted(packages - set(RANK))}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(include) == sorted(f"{package}*" for package in RANK)


def test_layers_checker_reports_each_kind_of_offence(tmp_path: Path) -> None:
    modules = {
        "core/__init__.py": "",
        "core/settings.py": "def later():\n    import ingest.service\n",
        "schemas/scratch.py": "from core.urls import DatabaseUrl\nfrom simulators import Fleet\n",
        "ingest/deadletters.py": "from . import writer\nfrom .. import writer\n",
        "ingest/writer.py": "from api.queries import x\n",
        "api/queries.py": "from ingest import deadletters\n",
        "bench/ingest.py": "import importlib\nimportlib.import_module('citytel.cli')\n",
        "citytel/cli.py": "import api, bench, core, schemas\n",
    }
    for path, source in modules.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(source)
    arrows = arrows_in_tree(tmp_path)
    above = "which is above it"
    assert layer_violations(arrows) + part_cycles(arrows) == [
        # inside a function still counts
        f"core/settings.py:2: core -> ingest: the ground (core) imports a part (ingest), {above}",
        # line 1 (core) is allowed
        "schemas/scratch.py:2: schemas -> simulators: the contract (schemas) imports a part"
        f" (simulators), {above}",
        # line 1 stays inside ingest
        "ingest/deadletters.py:2: ingest -> <beyond the top>: a relative import that leaves"
        " the top-level package",
        "ingest/writer.py:1: ingest -> api: an arrow between parts that is not in PART_ARROWS"
        " (add it there and to docs/development.md if it is meant)",
        # api -> ingest is documented; the CLI (citytel/cli.py) may import everything
        f"bench/ingest.py:2: bench -> citytel: a part (bench) imports the CLI (citytel), {above}",
        "a cycle among parts: api -> ingest -> api"
        " (api/queries.py:1: api -> ingest; ingest/writer.py:1: ingest -> api)",
    ]


def test_layers_checker_resolves_relative_imports() -> None:
    source = "from . import a\nfrom .b import c\nfrom ..routes import d\n"
    arrows = arrows_in_source(source, "api/routes/devices.py")
    assert arrows == []
    arrows = arrows_in_source("from ... import x\n", "api/routes/devices.py")
    assert [str(a) for a in arrows] == ["api/routes/devices.py:1: api -> <beyond the top>"]


def test_the_cli_starts_without_loading_what_only_some_commands_need() -> None:
    """Every command shares one CLI: `citytel collect` must not pay at start-up (and in
    its memory, the collector's RSS bound) for the web framework, the Grafana client or
    the benchmarks. Those load in the command that uses them."""
    heavy = ("fastapi", "uvicorn", "grafana_client", "httpx", "schemathesis", "bench.ingest")
    probe = f"import sys, citytel.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert loaded == "", f"`import citytel.cli` loads {loaded}: import it inside the command"
