"""``scale compare``: every method on the same problems, one accuracy-vs-tokens frontier.

- ``entries``: the compare file (a base experiment and named entries) and what counts as greedy;
- ``stats``: Wilson and t intervals, the Pareto frontier;
- ``run``: ``run_compare`` (resumable per problem and per sample) and the table;
- ``plot``: the PNG; ``tracking``: the MLflow parent and child runs.
"""

from optimize.compare.entries import CompareConfig, Entry, load_compare
from optimize.compare.run import CompareReport, EntryResult, run_compare

__all__ = ["CompareConfig", "Entry", "load_compare", "CompareReport", "EntryResult", "run_compare"]
