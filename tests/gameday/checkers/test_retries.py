"""Deterministic retries: all answers to one idempotency key are the same answer."""

from __future__ import annotations

from pathlib import Path

import msgspec

from gameday.checkers import NOT_REPLAYED, Verdict, deterministic_retries, scan_history
from gameday.history import Op, OpType


def answer(
    index: int, key: str, status: int, digest: str, *, error: str = "", type: OpType | None = None
) -> Op:
    kind: OpType = type or ("ok" if status < 400 else "fail" if status < 500 else "info")
    return Op(
        index=index,
        type=kind,
        f="pay",
        process="c",
        endpoint="POST /bookings/{id}/payment",
        t0=index,
        t1=index + 0.1,
        status=status,
        idempotency_key=key,
        error=error,
        value={"booking_id": 1, "digest": digest},
    )


def test_identical_replays_pass() -> None:
    result = deterministic_retries(
        [answer(0, "k1", 200, "aa"), answer(1, "k1", 200, "aa"), answer(2, "k2", 402, "bb")]
    )
    assert result.verdict is Verdict.PASS
    assert result.figures["keys"] == 2
    assert result.figures["repeated_answers"] == 1


def test_a_transient_conflict_does_not_break_determinism() -> None:
    ops = [
        answer(0, "k", 409, "busy", error="payment_in_progress"),
        answer(1, "k", 409, "busy2", error="idempotency_in_progress"),
        answer(2, "k", 200, "aa"),
        answer(3, "k", 200, "aa"),
    ]
    result = deterministic_retries(ops)
    assert result.verdict is Verdict.PASS
    assert result.figures["excluded_transient"] == 2
    assert "payment_in_progress" in NOT_REPLAYED


def test_info_outcomes_are_not_answers() -> None:
    ops = [answer(0, "k", 503, "x"), answer(1, "k", 0, "", type="info"), answer(2, "k", 200, "aa")]
    assert deterministic_retries(ops).verdict is Verdict.PASS


def test_a_different_digest_fails_with_both_answers() -> None:
    ops = [
        answer(0, "k", 200, "aa"),
        answer(1, "other", 200, "cc"),
        answer(2, "k", 200, "ab"),
        answer(3, "k", 200, "aa"),
    ]
    result = deterministic_retries(ops)
    assert result.verdict is Verdict.FAIL
    assert result.evidence == [
        {
            "idempotency_key": "k",
            "answers": [
                {"status": 200, "digest": "aa", "op_index": 0},
                {"status": 200, "digest": "ab", "op_index": 2},
            ],
        }
    ]


def test_a_different_status_fails() -> None:
    result = deterministic_retries([answer(0, "k", 200, "aa"), answer(1, "k", 409, "aa")])
    assert result.verdict is Verdict.FAIL


def test_answers_without_a_digest_are_counted_not_compared() -> None:
    op = Op(
        index=0,
        type="ok",
        f="pay",
        process="c",
        endpoint="e",
        t0=0,
        t1=1,
        status=200,
        idempotency_key="k",
        value={"booking_id": 1},
    )
    result = deterministic_retries([op, answer(1, "k", 200, "aa")])
    assert result.verdict is Verdict.PASS
    assert result.figures["without_digest"] == 1


def test_an_unreadable_line_makes_a_clean_history_unknown_but_not_a_broken_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.jsonl"
    lines = [msgspec.json.encode(answer(0, "k", 200, "aa")), b'{"index": 1, "type": "ok"']
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert deterministic_retries(scan_history(path)).verdict is Verdict.UNKNOWN
    lines.append(msgspec.json.encode(answer(2, "k", 200, "zz")))
    path.write_bytes(b"\n".join(lines) + b"\n")
    broken = deterministic_retries(scan_history(path))
    assert broken.verdict is Verdict.FAIL
    assert "history: 1 line could not be decoded" in broken.summary
