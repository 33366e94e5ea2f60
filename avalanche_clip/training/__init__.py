"""What a strategy needs while it trains, below the strategies: how batches are drawn
(:mod:`~avalanche_clip.training.batching`), seeding, the distributed helpers, Avalanche plugins
(:mod:`~avalanche_clip.training.plugins`), plugin and evaluator state, and checkpoints."""
