"""Decode: the bytes of one packet to its layers, or a named anomaly."""
