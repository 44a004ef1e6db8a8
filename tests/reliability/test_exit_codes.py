"""Exit statuses of the installed ``scale`` command when its model cannot answer (subprocess runs).

- Nothing listens at the server's URL: exit 2 and ONE ``error:`` line naming the URL and the curl
  that checks it, for a 1-problem run (below the 3-in-a-row rule) and for a 5-problem run; the
  failures are on disk and no accuracy is printed as if it were a result.
- The server fails 1 of 5 problems: exit 3, the results of all 5 are written, the table shows the
  accuracy over answered problems marked incomplete, and the same command again retries only the
  failed one and exits 0.

Retries are kept short through the experiment file (``retries: 0``): no backoff sleep at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optimize.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
from optimize.evaluation.results import ResultsFile
from program.testing.fakeserver import FakeServer, Fault
from reliability.toy import TALLY, experiment_file, requests_for, rows, run_scale, toy_server

pytestmark = pytest.mark.fake_server


def closed_url() -> str:
    """The base URL of a port on 127.0.0.1 where nothing listens any more."""
    server = FakeServer().start()
    url = server.api_base
    server.stop()
    return url


def scale_eval(tmp_path: Path, data: Path, api_base: str, limit: int):
    """``scale eval --method cot`` on the toy benchmark against ``api_base``, one attempt per call."""
    lm = {"preset": "local", "endpoint": {"model": "openai/fake", "api_base": api_base, "retries": 0, "timeout": 5}}
    config = experiment_file(tmp_path / "exp.yaml", data=data, output=tmp_path / "runs", method="cot", lm=lm)
    return run_scale("eval", "--config", str(config), "--limit", str(limit), "--no-progress",
                     "--api-base", api_base, cwd=tmp_path, timeout=180)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("limit", [1, 5])
def test_an_unreachable_server_exits_2_with_one_line_naming_the_url(tmp_path: Path, toy_data: Path,
                                                                       limit: int) -> None:
    url = closed_url()
    done = scale_eval(tmp_path, toy_data, url, limit)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr
    [line] = error_lines(done.stderr)  # exactly one error line
    assert "never reached" in line and url in line and f"curl {url}/models" in line
    assert "accuracy" not in done.stdout  # no "0.0 %" passed off as a result
    stored = ResultsFile(tmp_path / "runs" / "toy" / "cot-gsm8k" / "results.jsonl").read()
    expected = min(limit, 3)  # 5 problems: the third failure in a row stops the run
    assert [r.error_type for r in stored] == ["ServerError"] * expected
    TALLY[f"exit codes: unreachable, {limit} problem(s)"] = {"exit status": done.returncode,
                                                             "error lines": 1, "results written": len(stored)}


def test_a_server_failing_one_of_five_exits_3_and_the_rerun_exits_0(tmp_path: Path, toy_data: Path) -> None:
    with toy_server(Fault(status=500)) as server:  # the first request gets a 500; every other one an answer
        done = scale_eval(tmp_path, toy_data, server.api_base, 5)
        assert done.returncode == EXIT_INCOMPLETE, done.stderr
        assert "Traceback" not in done.stderr and not error_lines(done.stderr)
        [warning] = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert "1 of 5 problems failed (1 ServerError)" in warning and "run the same command again" in warning
        assert "incomplete: 1 of 5 problems failed" in done.stdout
        assert "accuracy over answered" in done.stdout and "100.0% (4/4)" in done.stdout
        run_dir = tmp_path / "runs" / "toy" / "cot-gsm8k"
        stored = ResultsFile(run_dir / "results.jsonl").read()
        assert len(stored) == 5 and [r.id for r in stored if r.failed] == ["q000"]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert (summary["complete"], summary["n_failed"], summary["n_answered"]) == (False, 1, 4)

        rerun = scale_eval(tmp_path, toy_data, server.api_base, 5)
        assert rerun.returncode == EXIT_OK, rerun.stderr
        assert "1 new, 4 resumed" in rerun.stdout and "incomplete" not in rerun.stdout
        asked = requests_for(server)
    assert asked == [r["problem"] for r in rows(5)] + [rows(1)[0]["problem"]]  # only the failed one again
    TALLY["exit codes: 1 of 5 failed"] = {"exit status": done.returncode, "rerun exit status": rerun.returncode,
                                          "results written": len(stored)}
