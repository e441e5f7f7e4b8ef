"""Training: the config a recipe fills, the loop, its losses and callbacks."""
from .callbacks import Callback, TrainingDiverged, default_callbacks
from .config import CHECKPOINT, KEEP, TrainConfig
from .loop import train

__all__ = ["CHECKPOINT", "KEEP", "Callback", "TrainConfig", "TrainingDiverged", "default_callbacks", "train"]
