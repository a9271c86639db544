"""Device models: identity, pattern of life, rarity, peer groups, state.

:class:`Models` is the pipeline's models stage and the
:class:`sensor.model.view.ModelView` that detections read.
"""

from sensor.model.models import Models

__all__ = ["Models"]
