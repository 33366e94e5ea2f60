"""avalanche-clip: CLIP-based continual learning for Avalanche.

The reference implementation of "Memory-Efficient Continual Learning with CLIP Models"
(arXiv 2605.03866): the GCL and GDRO objectives as Avalanche strategies, with a small
class-balanced replay memory.

Importing this package has no side effects; import the sub-packages you need::

    from avalanche_clip.losses import GCLLoss, GDROLoss
    from avalanche_clip.models import create_clip, CLIPClassifier
    from avalanche_clip.scenarios import build_scenario
    from avalanche_clip.strategies import GCLStrategy, GDROStrategy
"""

__version__ = "0.1.0"
