"""The plugin object unicomp loads through the ``unicomp`` entry point."""

from unicomp.plugins import hookimpl
from unicomp_sensor.modality import SensorModality


@hookimpl
def unicomp_register_modalities() -> list[SensorModality]:
    """One modality: CSV sensor signals."""
    return [SensorModality()]
