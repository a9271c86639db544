"""Compiled fast paths, built from ext/*.pyx by setup.py."""
