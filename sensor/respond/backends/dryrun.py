"""The dry-run back-end: everything is simulated, nothing is touched.

The default for a fresh install and for every replay. It keeps the set of
intents it would have in force, so tests and the API can see them.
"""

from __future__ import annotations

from typing import Any

from sensor.respond.intent import ACTIONS, Intent


class DryRun:
    """Records what would be in force; touches no socket, table or file."""

    name = "dry-run"
    actions = frozenset(ACTIONS)

    def __init__(self) -> None:
        #: Intent id -> intent, for what would be in force now.
        self.active: dict[str, Intent] = {}

    def apply(self, intent: Intent, now: float) -> None:
        if intent.action != "reset":
            self.active[intent.id] = intent

    def remove(self, intent: Intent, now: float) -> None:
        self.active.pop(intent.id, None)

    def reconcile(self, intents: list[Intent], now: float) -> None:
        self.active = {i.id: i for i in intents if i.action != "reset"}

    def poll(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        self.active.clear()
