"""Improving a program with DSPy: ``scale compile``, and the pickle-free directories it saves.

- ``compile``: ``compile_experiment``, the library function behind the command (splits, scoring,
  the saved directory, MLflow);
- ``optimizers``: the metric, its GEPA feedback, budgets, and the DSPy optimizers;
- ``stage``: stage-level compiling (one predictor on its own stage's examples);
  ``stage_programs``: the small programs and the rating's metric a stage compile tunes;
- ``saved``: program directories (``save_program``, ``load_program``).
"""
