"""The token ledger sums by stage and separates true cost from what was spent."""

from __future__ import annotations

import threading

from program.ledger import Call, Ledger, current_ledger, record, recording, stage


def test_calls_are_summed_by_stage_with_thinking_and_answer_split() -> None:
    ledger = Ledger()
    with recording(ledger):
        with stage("decompose"):
            record(prompt_tokens=100, completion_tokens=20)
        with stage("system2"):
            record(prompt_tokens=50, completion_tokens=64, thinking_tokens=64)
            record(prompt_tokens=120, completion_tokens=10)
            record(prompt_tokens=120, completion_tokens=10, cached=True)
    by_stage = ledger.by_stage()
    assert list(by_stage) == ["decompose", "system2"]
    assert by_stage["system2"]["thinking_tokens"] == 64
    assert by_stage["system2"]["answer_tokens"] == 20
    assert ledger.totals()["total_tokens"] == 100 + 20 + 50 + 64 + 120 + 10 + 120 + 10
    assert ledger.totals(spent_only=True)["total_tokens"] == 100 + 20 + 50 + 64 + 120 + 10


def test_no_active_ledger_records_nothing_and_records_round_trip() -> None:
    earlier = Ledger()
    with recording(earlier), stage("cot"):
        record(prompt_tokens=2, completion_tokens=2)
    call = record(prompt_tokens=1, completion_tokens=1)  # after the block: no ledger is active
    assert current_ledger() is None and call is not None and call.stage == "unstaged"
    assert earlier.calls == [Call(stage="cot", model="", prompt_tokens=2, completion_tokens=2)]
    ledger = Ledger()
    with recording(ledger), stage("cot"):
        record(prompt_tokens=3, completion_tokens=4, thinking_tokens=1, seconds=0.5)
    assert Ledger.from_records(ledger.to_records()).totals() == ledger.totals()


def test_each_thread_records_into_its_own_ledger() -> None:
    ledgers = [Ledger() for _ in range(8)]

    def work(i: int) -> None:
        with recording(ledgers[i]), stage("system1"):
            for _ in range(100):
                record(prompt_tokens=i, completion_tokens=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [lg.totals()["prompt_tokens"] for lg in ledgers] == [100 * i for i in range(8)]
