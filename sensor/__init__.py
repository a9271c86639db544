"""sensor: a network detection and response appliance.

Packets flow through the stages in the order of the subpackages: capture,
decode, flow, proto (application protocols), output.
"""

__version__ = "0.1.0"
