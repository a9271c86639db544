"""Protocol parsers: bytes in, records or named anomalies out; no state."""
