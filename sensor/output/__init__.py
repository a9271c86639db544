"""Output: JSON-lines log writers with Zeek's field names."""
