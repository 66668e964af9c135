"""Plugin discovery: built-ins through the same hooks, entry points, conflicts, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from unicomp_sensor import plugin as sensor_plugin
from unicomp_sensor.modality import SensorModality

from unicomp.errors import InputError, PluginError
from unicomp.modalities.base import Modality
from unicomp.plugins import hookimpl
from unicomp.plugins.manager import BUILTIN, BUILTIN_PLUGINS, build_registry


class _SecondSensor:
    """A plugin that claims a modality name someone else already has."""

    @hookimpl
    def unicomp_register_modalities(self) -> list[Modality]:
        return [SensorModality()]


class _NotAModality:
    @hookimpl
    def unicomp_register_modalities(self) -> list[object]:
        return ["just a string"]


def test_autoload_disabled_loads_only_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNICOMP_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = build_registry()
    assert [p.name for p in registry.plugins] == list(BUILTIN_PLUGINS)
    assert all(p.source == BUILTIN for p in registry.plugins)
    assert "sensor" not in registry.modalities


def test_a_plugin_object_can_be_registered_directly() -> None:
    registry = build_registry(autoload=False, extra_plugins=[sensor_plugin])
    assert isinstance(registry.modality("sensor"), SensorModality)
    assert registry.modality_for(Path("reading.CSV")).name == "sensor"
    info = next(p for p in registry.plugins if "modality:sensor" in p.provides)
    assert info.source == "registered directly"


def test_two_plugins_with_one_modality_name_is_an_error_naming_both() -> None:
    with pytest.raises(PluginError) as raised:
        build_registry(autoload=False, extra_plugins=[sensor_plugin, _SecondSensor()])
    message = str(raised.value)
    assert "'sensor'" in message and "unicomp_sensor.plugin" in message
    assert "_SecondSensor" in message


def test_a_plugin_returning_a_non_modality_is_an_error_naming_it() -> None:
    with pytest.raises(PluginError, match="not a Modality"):
        build_registry(autoload=False, extra_plugins=[_NotAModality()])


def test_unknown_modality_and_extension_list_what_is_known(registry) -> None:
    with pytest.raises(InputError, match="installed: .*sensor"):
        registry.modality("lidar")
    with pytest.raises(InputError, match=r"\.xyz"):
        registry.modality_for(Path("scan.xyz"))


def test_installed_distribution_is_discovered_with_its_version(installed_example) -> None:
    result = run_cli("plugins", "--json", env=installed_example)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["sensor"]["source"] == "unicomp-sensor 0.1.0"
    assert plugins["sensor"]["provides"] == ["modality:sensor"]
    assert plugins["sensor"]["error"] is None


def test_a_plugin_can_be_disabled_by_name(installed_example) -> None:
    env = {**installed_example, "UNICOMP_DISABLE_PLUGINS": "sensor"}
    result = run_cli("plugins", "--json", env=env)
    assert "sensor" not in {p["name"] for p in json.loads(result.stdout)}


def test_a_plugin_that_fails_to_import_is_reported_not_fatal(
    tmp_path: Path, installed_example
) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[unicomp]\nbroken = no_such_module_anywhere\n")
    env = {**installed_example, "PYTHONPATH": f"{tmp_path}:{installed_example['PYTHONPATH']}"}
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["broken"]["source"] == "broken-plugin 1.0"
    assert "ModuleNotFoundError" in plugins["broken"]["error"]
    assert plugins["sensor"]["error"] is None
