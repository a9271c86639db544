"""Application protocols: service detection and, later, protocol analyzers."""
