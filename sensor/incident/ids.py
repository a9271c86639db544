"""Alert and incident ids that continue across runs.

With a persistent model state (``sensord --state``), the next alert id and
the next incident id are kept in the state's ``meta`` table, read when the
pipeline is built and written when the incidents finish (after the
detections, before the models save themselves), so a second replay or a
restarted daemon goes on from ``A00000042`` instead of starting again at
``A00000001``. Ids handed out after the last save are handed out again if
the process dies before it.
"""

from __future__ import annotations

from typing import Any, Protocol

from sensor.incident.builder import IncidentBuilder

ALERT_KEY = "next_alert_id"
INCIDENT_KEY = "next_incident_id"


class Counted(Protocol):
    """Anything with a ``next_id`` (the Detector)."""

    next_id: int


def keep_ids(store: Any, detector: Counted, incidents: IncidentBuilder) -> None:
    """Continue the ids from ``store`` (the models' state store: ``meta()``,
    ``save(meta, devices, rarity, dropped)``, ``persistent``) and save
    them when the incidents finish. Nothing happens for a store in memory."""
    if store is None or not getattr(store, "persistent", False):
        return
    meta = store.meta()
    detector.next_id = max(detector.next_id, int(meta.get(ALERT_KEY, 1)))
    incidents.next_id = max(incidents.next_id, int(meta.get(INCIDENT_KEY, 1)))

    def save() -> None:
        store.save(
            {ALERT_KEY: detector.next_id, INCIDENT_KEY: incidents.next_id}, [], [], []
        )

    incidents.on_finish.append(save)
