"""Stub for the compiled decoder (ext/decode.pyx); twin: sensor.decode.packet."""

from typing import Any

#: Anomaly names by the decoder's internal code; index 0 is "no anomaly".
ANOMALY_NAMES: tuple[str, ...]

def decode(linktype: int, data: bytes) -> dict[str, Any]:
    """A plain dict of the layers of one packet, as the twin's decode()."""
