"""Type stub for the compiled ring reader (ext/ring.pyx).

Same interface as its pure-Python twin, sensor.capture.ring.Ring.
"""

import socket

from sensor.capture.batch import Batch

class Ring:
    """The TPACKET_V3 receive ring of one AF_PACKET socket."""

    sock: socket.socket
    block_size: int
    blocks: int
    blocks_read: int
    packets_read: int
    errors: list[int]
    def __init__(self, sock: socket.socket, block_size: int, blocks: int, block_timeout_ms: int) -> None: ...
    def read(self, timeout_ms: int) -> Batch | None: ...
    def close(self) -> None: ...
