"""The packages' shape: imports flow training -> esrgan_plugin -> pipelines through the host's
contract, no import cycles, small modules, a light start-up, and old paths still work."""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"pipelines": {"esrgan_plugin", "training"}, "esrgan_plugin": {"training"}}
DEPRECATED = {
    "pipelines.registry": "pipelines.runner.registry",
    "pipelines.markers": "pipelines.hooks.markers",
    "pipelines.hookspecs": "pipelines.hooks.specs",
    "pipelines.plugins": "pipelines.hooks.manager",
    "pipelines.images": "pipelines.io.items",
    "pipelines.imageio": "pipelines.io.images",
}


PACKAGES = ("pipelines", "esrgan_plugin", "training")
MAX_MODULE_LINES = 450


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imported_modules(path))
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("package", ["esrgan_plugin", "training"])
def test_plugins_use_the_host_only_through_its_contract(package: str) -> None:
    """``pipelines.api`` is the host's public contract; nothing else of the host is imported."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imported_modules(path))
        if name.split(".")[0] == "pipelines" and name.split(".")[:2] != ["pipelines", "api"]
    ]
    assert not offenders, offenders


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in it (inside functions too)."""
    paths = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in paths)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    here = here[: len(here) - node.level + 1]
                    base = ".".join([*here, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_the_project_modules() -> None:
    """Imports inside functions count: a cycle hidden in a function is still a cycle."""
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_long() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for pkg in PACKAGES
        for path in (ROOT / pkg).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def test_no_project_module_uses_a_deprecated_path() -> None:
    shims = {ROOT / (name.replace(".", "/") + ".py") for name in DEPRECATED}
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in ("pipelines", "esrgan_plugin", "training", "tests", "bench", "scripts")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path not in shims and path != Path(__file__).resolve()
        for name in _imported_modules(path)
        if name in DEPRECATED
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_deprecated_paths_re_export_with_a_warning(old: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    new = importlib.import_module(DEPRECATED[old])
    public = [name for name in vars(new) if not name.startswith("_")]
    assert public and all(getattr(module, name) is getattr(new, name) for name in public)


def test_the_folders_name_the_concerns() -> None:
    for folder in ("hooks", "config", "runner", "io", "builtin"):
        assert (ROOT / "pipelines" / folder / "__init__.py").is_file()
    import pipelines.api as api

    assert {"hookimpl", "StageSpec", "StageParams", "ImageItem", "map_stage"} <= set(api.__all__)


def test_listing_stages_and_parsing_arguments_do_not_load_torch_dask_or_zarr() -> None:
    """What `pipelines validate`, `pipelines stages` and `esrgan --help` import (start-up time)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pipelines.hooks.manager import build_registry, get_plugin_manager\n"
        "import esrgan_plugin.cli\n"
        "esrgan_plugin.cli.build_parser()\n"
        "assert len(build_registry(get_plugin_manager())) >= 8\n"
        "heavy = sorted({'torch', 'dask', 'zarr', 'scipy', 'cv2'} & set(sys.modules))\n"
        "print(' '.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_fast_start_and_what_it_runs_load_no_torch() -> None:
    """The command's fast start (cached OpenVINO graphs) and the tile, padding and channel code
    it shares with the torch upscaler import without torch (its 3 s are what it saves)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import esrgan_plugin.cli.fast_start, esrgan_plugin.cli.upscale\n"
        "import esrgan_plugin.engines.openvino.compiled, esrgan_plugin.tiled_upscaler\n"
        "print(' '.join(sorted({'torch', 'dask', 'zarr', 'cv2'} & set(sys.modules))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_plugin_and_its_command_load_no_napari_or_qt() -> None:
    """The napari plugin (esrgan_plugin/napari) loads napari and Qt only when napari opens its
    widget: importing the plugin, its napari package or the ``esrgan`` parser loads neither."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import esrgan_plugin, esrgan_plugin.napari, esrgan_plugin.cli\n"
        "esrgan_plugin.cli.build_parser()\n"
        "gui = {'napari', 'npe2', 'qtpy', 'superqt', 'vispy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6'}\n"
        "print(' '.join(sorted(gui & {m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
