"""Incidents: alerts grouped into the story of one attack or one device.

:class:`IncidentBuilder` implements the pipeline's Incidents stage; the
story itself (title, severity, narrative) is told by
:mod:`sensor.incident.narrative` from templates and the evidence.
"""

from sensor.incident.builder import IncidentBuilder

__all__ = ["IncidentBuilder"]
