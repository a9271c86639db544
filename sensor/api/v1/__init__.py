"""Generated gRPC stubs of API version 1 (from proto/sensor/v1/*.proto).

The modules here are generated at build time by setup.py (``make install``
or ``python setup.py build_ext --inplace``) with the grpcio-tools of the
environment, and are not kept in git.
"""
