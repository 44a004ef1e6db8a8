"""Reproduce the issue-13 checks with the installed `scale` and record every output here.

    .venv/bin/python experiments/results/exit-statuses/run.py

1. the issue's command: `scale eval --method cot --benchmark gsm8k --limit 1 --model openai/nothing
   --api-base http://127.0.0.1:9` (nothing listens there; default retries), and the same with --limit 5;
2. a fake server (program.fakeserver) that fails the first request with HTTP 500: 5 toy problems, then
   the same command again;
3. `scale quickstart` (compile, search, test, MLflow on) against a fake server that solves the toy
   problems: its stderr is searched for the DSPy/MLflow pickle warnings.

Each case writes <case>/command.txt, stdout.txt, stderr.txt, exit_status.txt and the results files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from program.fakeserver import Fault  # noqa: E402
from reliability.toy import data_dir, experiment_file, scale_command, scale_env, toy_server  # noqa: E402

PICKLE = ("Loading untrusted .pkl", "serialized using cloudpickle", "pickle")


def run(case: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out = HERE / case
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(scale_command(*args), cwd=cwd, env=env or scale_env(), capture_output=True, text=True,
                          timeout=1800)
    seconds = time.monotonic() - started
    (out / "command.txt").write_text("scale " + " ".join(args) + f"\n# cwd: {cwd}\n", encoding="utf-8")
    (out / "stdout.txt").write_text(done.stdout, encoding="utf-8")
    (out / "stderr.txt").write_text(done.stderr, encoding="utf-8")
    (out / "exit_status.txt").write_text(f"{done.returncode}\n# {seconds:.1f} s\n", encoding="utf-8")
    print(f"{case}: exit {done.returncode} in {seconds:.1f} s")
    return done


def copy_results(case: str, run_dir: Path) -> None:
    for path in run_dir.rglob("*"):
        if path.is_file() and path.name in ("results.jsonl", "summary.json", "quickstart.json"):
            target = HERE / case / "outputs" / path.relative_to(run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


def main() -> None:
    shared = ROOT.parent / "shared" / "data"
    env = scale_env(SCALE_DATA_DIR=str(shared)) if shared.is_dir() else scale_env()
    with tempfile.TemporaryDirectory(prefix="scale-exit-") as tmp:
        work = Path(tmp)
        for limit in (1, 5):
            case = f"unreachable-limit{limit}"
            cwd = work / case
            cwd.mkdir()
            run(case, ["eval", "--method", "cot", "--benchmark", "gsm8k", "--limit", str(limit), "--model",
                       "openai/nothing", "--api-base", "http://127.0.0.1:9", "--no-progress"], cwd, env)
            copy_results(case, cwd / "runs")

        data = data_dir(work)
        with toy_server(Fault(status=500)) as server:
            lm = {"preset": "local", "endpoint": {"model": "openai/fake", "api_base": server.api_base, "retries": 0}}
            config = experiment_file(work / "exp.yaml", data=data, output=work / "runs", method="cot", lm=lm)
            argv = ["eval", "--config", str(config), "--limit", "5", "--no-progress", "--api-base", server.api_base]
            run("fake-server-1-of-5-fails", argv, work)
            copy_results("fake-server-1-of-5-fails", work / "runs")
            run("fake-server-1-of-5-fails-rerun", argv, work)
            copy_results("fake-server-1-of-5-fails-rerun", work / "runs")

        with toy_server() as server:
            lm = {"preset": "local", "endpoint": {"model": "openai/fake", "api_base": server.api_base, "retries": 1}}
            config = experiment_file(work / "qs.yaml", data=data, output=work / "qs-runs", method="scale", lm=lm,
                                     mlflow_uri=f"sqlite:///{work / 'mlflow.db'}", name="qs")
            done = run("quickstart-fake-server", ["quickstart", "--config", str(config), "--no-progress",
                                                  "--api-base", server.api_base], work)
            copy_results("quickstart-fake-server", work / "qs-runs")
        hits = [line for line in done.stderr.splitlines() if any(p in line for p in PICKLE)]
        (HERE / "quickstart-fake-server" / "pickle_warnings.txt").write_text(
            f"{len(hits)} lines of stderr mention {PICKLE}\n" + "".join(h + "\n" for h in hits), encoding="utf-8")
        print(f"quickstart: {len(hits)} pickle warning lines in stderr")


if __name__ == "__main__":
    main()
