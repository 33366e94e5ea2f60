"""avalanche-clip: CLIP-based continual learning for Avalanche.

The reference implementation of "Memory-Efficient Continual Learning with CLIP Models"
(arXiv 2605.03866): the GCL and GDRO objectives as Avalanche strategies, with a small
class-balanced replay memory.

Importing this package has one side effect: it hides qpsolvers' "no QP solver found" warning
(see below). Import the sub-packages you need::

    from avalanche_clip.losses import GCLLoss, GDROLoss
    from avalanche_clip.models import create_clip, CLIPClassifier
    from avalanche_clip.scenarios import build_scenario
    from avalanche_clip.strategies import GCLStrategy, GDROStrategy
"""

import warnings

__version__ = "0.1.0"

# Avalanche imports qpsolvers (for its GEM plugin) on its first import, anywhere in avalanche,
# and qpsolvers warns on every fresh process that no QP solver is installed: every command of
# ours printed it. Nothing here solves QPs (GEMPlugin, which does, fails with qpsolvers' own
# error naming the missing solver when it first needs one). This package runs before any of its
# modules imports avalanche, so this one targeted filter, that message from that module alone,
# covers them all; no other warning is touched.
warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning,
                        module=r"qpsolvers(\.|$)")
