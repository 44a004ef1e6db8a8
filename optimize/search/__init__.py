"""``scale search``: an Optuna study over thresholds and budgets, for the accuracy/tokens front.

- ``run``: ``run_search``, the library function behind the command, and its printout;
- ``space``: the search space (which knobs a trial turns, and how each is sampled);
- ``objective``: one trial, a configuration evaluated on the dev problems;
- ``study``: the study's storage, who may create trials, how N is counted;
  ``storage``: study storage URLs (open, print without a password);
- ``plans``: the plan cache on disk shared by trials and workers; ``plans_db``: the same in the
  study's database;
- ``pareto``: the Pareto front as a table, a plot and experiment files.
"""
