"""A unicomp modality for 1-D sensor signals stored as CSV."""

from unicomp_sensor.modality import SensorModality, SensorSignal

__all__ = ["SensorModality", "SensorSignal"]
