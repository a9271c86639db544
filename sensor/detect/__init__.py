"""Detections: modules that turn records and models into alerts."""
