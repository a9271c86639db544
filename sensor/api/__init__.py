"""The gRPC API: how operators and the management console see and steer
the sensor (services in ``proto/sensor/v1``, stubs in :mod:`sensor.api.v1`).

- :mod:`sensor.api.state`: what the API serves, fed by the pipeline's
  records; the one place that knows the other stages' objects.
- :mod:`sensor.api.actions`: operator changes to actions (approve, clear,
  extend, block) and durations.
- :mod:`sensor.api.convert`: records to protobuf messages.
- :mod:`sensor.api.servicers`: the services.
- :mod:`sensor.api.auth`: who is calling (Unix peer credentials, bearer
  tokens, client certificates).
- :mod:`sensor.api.server`: listening on a Unix socket or on TCP with TLS.
- :mod:`sensor.api.errors`: errors and their gRPC status codes.
"""
