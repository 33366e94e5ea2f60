"""What the command line drives, above the strategies: the config
(:mod:`~avalanche_clip.pipeline.config`), one run (:mod:`~avalanche_clip.pipeline.run`, trained by
:mod:`~avalanche_clip.pipeline.run_loop`), sweeps of runs (``sweep``, ``sweep_runs``,
``sweep_state``, ``parallel_sweep`` with its ``process_pool`` and ``ray_pool``), tuning (``tune``, ``tune_budget``, ``tune_storage``,
``tuned_values``) and what a run folder keeps (``run_lock``, ``run_loggers``, ``data_identity``)."""
