"""Capture: where packets come from (capture files now, a ring later)."""
