"""Issue 25's check: programs saved before program/ was grouped into layers still load, demos included.

Run:
    .venv/bin/python experiments/results/layout/load-saved-programs.py \
        > experiments/results/layout/load-saved-programs.txt
"""

from optimize.compiling.saved import load_program

for directory in ["experiments/results/compile-gsm8k/compiled-bootstrap",
                  "experiments/results/quickstart/compiled-bootstrap"]:
    program = load_program(directory).program
    demos = [(name, len(predictor.demos)) for name, predictor in program.named_predictors()]
    print(directory, f"{type(program).__module__}.{type(program).__name__}", demos)
