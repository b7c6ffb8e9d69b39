"""The plugin manager factory and the registry built from it; nothing is loaded at import time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import pluggy

from pipelines.errors import PipelineError
from pipelines.hooks import specs as hookspecs
from pipelines.hooks.markers import PROJECT_NAME
from pipelines.runner.registry import StageRegistry, StageSpec

BUILTIN_PLUGIN = "builtin"
"""Name under which the built-in stages (:mod:`pipelines.builtin`) are registered."""


class PluginLoadError(PipelineError):
    """An installed plugin (entry point) that fails to import or to register its hooks."""


def get_plugin_manager(
    plugins: Iterable[object] = (), *, builtin: bool = True, entry_points: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with the host's hookspecs, the built-in stages, installed plugins
    (entry-point group ``pipelines``) and any ``plugins`` given (modules or objects)."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if builtin:
        from pipelines import builtin as builtin_module

        pm.register(builtin_module, name=BUILTIN_PLUGIN)
    if entry_points:
        _load_entry_points(pm)
    for plugin in plugins:
        try:
            pm.register(plugin)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginLoadError(f"cannot register plugin {plugin!r}: {exc}") from None
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    try:
        pm.load_setuptools_entrypoints(PROJECT_NAME)
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"plugin {exc.plugin!r} has an invalid hook: {exc}") from None
    except Exception as exc:  # an entry point whose module fails to import
        raise PluginLoadError(
            f"cannot load a plugin of entry-point group {PROJECT_NAME!r}: {type(exc).__name__}: {exc}"
        ) from exc


def build_registry(pm: pluggy.PluginManager) -> StageRegistry:
    """Collect every plugin's ``register_stages()`` into a registry, remembering who registered what."""
    registry = StageRegistry()
    for impl in pm.hook.register_stages.get_hookimpls():
        specs = cast("Iterable[StageSpec] | None", impl.function())
        if specs is None:
            continue
        registry.extend(specs, plugin=impl.plugin_name)
    return registry


@dataclass(frozen=True)
class PluginInfo:
    """What ``pipelines plugins`` shows: a plugin's name, distribution version and hooks."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


def plugin_infos(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with the hooks it implements, the built-in one first."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        if dist is not None:
            dist_name, version = dist.metadata["name"], dist.version
        else:
            dist_name, version = _distribution_of(plugin)
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        infos.append(PluginInfo(name, dist_name, version, hooks))
    return sorted(infos, key=lambda info: (info.name != BUILTIN_PLUGIN, info.name))


def _distribution_of(plugin: object) -> tuple[str, str]:
    """The installed distribution that provides a plugin registered without an entry point."""
    from importlib import metadata

    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "")
    if not isinstance(module, str):
        module = str(getattr(plugin, "__name__", ""))
    top = module.split(".")[0]
    for dist_name in metadata.packages_distributions().get(top, []):
        try:
            return dist_name, metadata.version(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return "-", "-"
