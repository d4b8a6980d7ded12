"""The tuning stage: each method's hyperparameters chosen on the validation split, with the
same number of trials for every method (``python -m bench tune``).

One concept per module: ``config`` (what a tuning is and its fingerprint), ``objective`` (one
trial: fit, probe, score on validation only), ``pruner`` (when to stop a trial), ``study``
(Optuna storage, studies, one trial as a task), ``driver`` (trials on local, process or Dask
workers), ``outputs`` (``tuned.toml``, ``tuning.md``) and ``plots``.
"""
