"""Training of the localization model with the multi-positive cross-modal alignment method (METHOD.md).

Self-supervised: a frame and its own audio are the only signal; class labels are read by the evaluation
only. ``python -m train --config cpu`` trains the default checkpoint; ``torchrun -m train`` runs DDP.
"""
from .config import PRESETS, TrainConfig, load_config
from .loop import train

__all__ = ["PRESETS", "TrainConfig", "load_config", "train"]
