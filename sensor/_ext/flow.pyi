"""Stub for the compiled connection table (ext/flow.pyx); twin: sensor.flow.table."""

from sensor.capture.batch import Batch
from sensor.flow.table import Events as Events
from sensor.flow.table import FlowConfig as FlowConfig

#: Weird names by the table's internal code ("" for unused codes).
WEIRD_NAMES: tuple[str, ...]

class ConnTable:
    """Bidirectional connection tracking with Zeek's conn.log semantics."""

    config: FlowConfig

    def __init__(self, config: FlowConfig | None = None) -> None: ...
    def process(self, batch: Batch) -> Events:
        """Track every packet of ``batch``; returns what finished meanwhile."""
    def flush(self) -> Events:
        """End of input: finish every connection still open, oldest first."""
    def stats(self) -> dict[str, int]:
        """Counters: packets, per-anomaly counts, connections, limits hit."""
    def memory(self) -> dict[str, int]:
        """Bytes held by the table now, by part (for the bench)."""
