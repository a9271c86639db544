"""Stub for the compiled connection table (ext/flow.pyx); twin: sensor.flow.table."""

from collections.abc import Callable

from sensor.capture.batch import Batch
from sensor.flow.table import Events as Events
from sensor.flow.table import FlowConfig as FlowConfig
from sensor.flow.table import PayloadEvent

#: Weird names by the table's internal code ("" for unused codes).
WEIRD_NAMES: tuple[str, ...]

class ConnTable:
    """Bidirectional connection tracking with Zeek's conn.log semantics."""

    config: FlowConfig

    on_payload: Callable[[PayloadEvent], None] | None
    wants_more: Callable[[str], bool] | None
    early: bool

    def __init__(
        self,
        config: FlowConfig | None = None,
        *,
        on_payload: Callable[[PayloadEvent], None] | None = None,
        wants_more: Callable[[str], bool] | None = None,
        early: bool = False,
    ) -> None:
        """The twin's hooks and early notices: see sensor.flow.table.ConnTable."""
    def process(self, batch: Batch) -> Events:
        """Track every packet of ``batch``; returns what finished meanwhile."""
    def advance(self, now_ns: int) -> Events:
        """Move network time to ``now_ns`` without a packet; returns what expired."""
    def flush(self) -> Events:
        """End of input: finish every connection still open, oldest first."""
    def stats(self) -> dict[str, int]:
        """Counters: packets, per-anomaly counts, connections, limits hit."""
    def memory(self) -> dict[str, int]:
        """Bytes held by the table now, by part (for the bench)."""
