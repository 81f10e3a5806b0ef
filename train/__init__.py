"""Training of the localization model with the multi-positive cross-modal alignment method (METHOD.md).

Self-supervised: a frame and its own audio are the only signal; class labels are read by the evaluation
only. ``python -m train --config cpu`` trains the default checkpoint; ``torchrun -m train`` runs DDP.
"""
import os

# Before torch loads OpenMP (``python -m train``, ``torchrun``, ``train.ablate``): OpenMP threads that
# spin-wait are several times slower when another process shares the 2 cores (measured 1.5 -> 4.3
# samples/s); passive waiting costs next to nothing on an idle machine. An explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
