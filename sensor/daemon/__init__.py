"""The live sensor: capture workers feeding one main process (``sensord --interface``)."""
