"""Measuring a program: run it on benchmark problems, keep every result, and summarise what it cost.

- ``evaluate``: concurrent, resumable evaluation (``evaluate``, ``build_program``);
- ``results``: the per-problem results file (durable appends, a forgiving reader, fingerprints);
- ``summary``: accuracy and tokens over a run's results, and the printed table;
- ``traces``: reading the plan steps a program's trace holds;
- ``sweep``: s1 budget sweeps (``scale eval --budgets``); ``plots``: its scaling-curve PNG;
- ``sft``: correct SCALE traces exported as chat-format training examples.
"""
