"""Per-connection protocol analyzers: state machines over parsed messages.

One module per protocol; each holds a :class:`sensor.proto.analyzer.Analyzer`
subclass that the dispatcher attaches to connections it recognises. Byte-level
parsing lives in :mod:`sensor.proto.parsers`.
"""
