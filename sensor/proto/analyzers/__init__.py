"""Per-connection protocol analyzers that write Zeek-style logs."""
