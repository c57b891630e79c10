"""The test-facing API of ``FakeDiscord``, one mixin per concern: observing and waiting, changing
the world, user interactions, modal submission."""

from .interactions import InteractionDriving
from .modals import ModalSubmitting
from .observe import Observing
from .world import WorldBuilding

__all__ = ["InteractionDriving", "ModalSubmitting", "Observing", "WorldBuilding"]
