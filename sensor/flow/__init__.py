"""Flow: the bidirectional connection table, with Zeek's semantics."""
