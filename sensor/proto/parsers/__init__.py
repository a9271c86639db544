"""Protocol parsers: bytes to messages, with no per-connection policy.

One module per protocol. A parser returns a message, asks for more bytes, or
names an anomaly; it never raises on bad input.
"""
