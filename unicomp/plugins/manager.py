"""Builds the plugin manager and the registry of what the plugins provide.

Order: built-in plugins (through the same hooks as everyone else), then the
``unicomp`` entry-point group unless ``UNICOMP_DISABLE_PLUGIN_AUTOLOAD`` is set, then
``check_pending()`` so a misspelt hook fails loudly. A third-party plugin that fails to
import or to answer a hook is recorded with its error and skipped, so one broken
package cannot take the CLI down; ``unicomp plugins`` shows it.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from unicomp.bench.base import Baseline, Metric
from unicomp.errors import InputError, PluginError
from unicomp.modalities.base import Modality
from unicomp.plugins import PROJECT_NAME, hookspecs

AUTOLOAD_ENV = "UNICOMP_DISABLE_PLUGIN_AUTOLOAD"
BLOCKLIST_ENV = "UNICOMP_DISABLE_PLUGINS"
BUILTIN = "built-in"

#: Modules registered as built-in plugins, in this order.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "unicomp.weights",
    "unicomp.modalities.speech.plugin",
    "unicomp.modalities.image.plugin",
    "unicomp.plugins.baselines",
)


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: where it came from and what it registered."""

    name: str
    source: str
    provides: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Registry:
    """Everything the plugins registered, indexed for lookup."""

    modalities: dict[str, Modality] = field(default_factory=dict)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    model_dirs: list[Path] = field(default_factory=list)
    plugins: list[PluginInfo] = field(default_factory=list)

    def modality(self, name: str) -> Modality:
        """The modality called ``name``; an unknown name lists the known ones."""
        try:
            return self.modalities[name]
        except KeyError:
            known = ", ".join(sorted(self.modalities)) or "none"
            raise InputError(f"unknown modality {name!r} (installed: {known})") from None

    def modality_for(self, path: Path) -> Modality:
        """The modality that reads files with ``path``'s extension."""
        suffix = path.suffix.lower()
        for modality in self.modalities.values():
            if suffix in modality.extensions:
                return modality
        known = sorted({ext for m in self.modalities.values() for ext in m.extensions})
        raise InputError(
            f"no modality reads {suffix or 'extension-less'} files like {path} "
            f"(known: {' '.join(known) or 'none'})"
        )


def build_plugin_manager(
    autoload: bool | None = None, extra_plugins: Iterable[object] = ()
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Register built-ins, ``extra_plugins``, then entry points; return manager and infos.

    ``autoload=None`` follows the ``UNICOMP_DISABLE_PLUGIN_AUTOLOAD`` environment variable.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name in os.environ.get(BLOCKLIST_ENV, "").split(","):
        if name.strip():
            manager.set_blocked(name.strip())
    infos: list[PluginInfo] = []
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
        infos.append(PluginInfo(module_name, BUILTIN))
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__qualname__
        manager.register(plugin, name=name)
        infos.append(PluginInfo(name, "registered directly"))
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_ENV)
    if autoload:
        infos.extend(_load_entry_points(manager))
    manager.check_pending()
    return manager, infos


def build_registry(autoload: bool | None = None, extra_plugins: Iterable[object] = ()) -> Registry:
    """Ask every plugin what it provides and check that it all fits together."""
    manager, infos = build_plugin_manager(autoload, extra_plugins)
    by_name = {info.name: info for info in infos}
    registry = Registry(plugins=infos)
    for plugin_name, items in _collect(manager, "unicomp_register_modalities", by_name):
        for item in items:
            if not isinstance(item, Modality):
                raise PluginError(f"plugin {plugin_name!r} registered {item!r}, not a Modality")
            _add_unique(registry.modalities, item.name, item, plugin_name, by_name, "modality")
    for plugin_name, items in _collect(manager, "unicomp_register_baselines", by_name):
        for item in items:
            if not isinstance(item, Baseline):
                raise PluginError(f"plugin {plugin_name!r} registered {item!r}, not a Baseline")
            _add_unique(registry.baselines, item.name, item, plugin_name, by_name, "baseline")
    for plugin_name, items in _collect(manager, "unicomp_register_metrics", by_name):
        for item in items:
            if not isinstance(item, Metric):
                raise PluginError(f"plugin {plugin_name!r} registered {item!r}, not a Metric")
            registry.metrics.append(item)
            by_name[plugin_name].provides.append(f"metric:{item.name}")
    for plugin_name, items in _collect(manager, "unicomp_model_dirs", by_name):
        for item in items:
            registry.model_dirs.append(Path(item))
            by_name[plugin_name].provides.append(f"models:{item}")
    return registry


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built once on first use."""
    return build_registry()


def _load_entry_points(manager: pluggy.PluginManager) -> list[PluginInfo]:
    infos = []
    for entry_point in entry_points(group=PROJECT_NAME):
        dist = entry_point.dist
        source = f"{dist.name} {dist.version}" if dist is not None else "entry point"
        if manager.is_blocked(entry_point.name) or manager.has_plugin(entry_point.name):
            continue
        try:
            manager.register(entry_point.load(), name=entry_point.name)
        except Exception as error:  # a broken third-party package must not stop the CLI
            infos.append(PluginInfo(entry_point.name, source, error=_describe(error)))
            continue
        infos.append(PluginInfo(entry_point.name, source))
    return infos


def _collect(
    manager: pluggy.PluginManager, hook_name: str, infos: dict[str, PluginInfo]
) -> list[tuple[str, list[Any]]]:
    """Call one hook plugin by plugin, so every result is attributed to its plugin."""
    results = []
    hook_caller = getattr(manager.hook, hook_name)
    for impl in reversed(hook_caller.get_hookimpls()):  # registration order
        info = infos.get(impl.plugin_name)
        if info is None or info.error:
            continue
        function: Callable[[], Any] = impl.function
        try:
            items = list(function() or [])
        except Exception as error:
            if info.source == BUILTIN:
                raise
            info.error = f"{hook_name} failed: {_describe(error)}"
            continue
        results.append((impl.plugin_name, items))
    return results


def _add_unique(
    table: dict[str, Any],
    key: str,
    item: Any,
    plugin_name: str,
    infos: dict[str, PluginInfo],
    kind: str,
) -> None:
    if key in table:
        owner = next(name for name, info in infos.items() if f"{kind}:{key}" in info.provides)
        raise PluginError(
            f"{kind} {key!r} is registered by both plugin {owner!r} and plugin {plugin_name!r}"
        )
    table[key] = item
    infos[plugin_name].provides.append(f"{kind}:{key}")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
