"""Deterministic retries: every answer to one idempotency key is the same answer.

The drill records, for each keyed request, the status and a digest of the whole answer
(status and body, keys sorted), so a replayed answer can be compared without keeping
bodies. Left out: ``info`` outcomes (no answer, or a 5xx that stored nothing), and answers
whose error code is in ``facts.NOT_REPLAYED`` — "still in progress, try again", or a
refusal made before the key was looked at. A 409 ``payment_in_progress`` followed by the
200 is how a double click should look; a 200 followed by a different 200 is not.
"""

from __future__ import annotations

from collections.abc import Iterable

from gameday.checkers.facts import HistoryFacts, check_history
from gameday.checkers.result import CheckResult, judge
from gameday.history import Op

NAME = "deterministic_retries"


def deterministic_retries(history: HistoryFacts | Iterable[Op]) -> CheckResult:
    """All answers to one idempotency key share (status, digest)."""
    facts = history if isinstance(history, HistoryFacts) else check_history(history, stats=False)
    retries = facts.retries
    violations = [
        {
            "idempotency_key": key,
            "answers": [
                {"status": a.status, "digest": a.digest, "op_index": a.op_index} for a in answers
            ],
        }
        for key, answers in sorted(retries.conflicts.items(), key=lambda kv: kv[1][0].op_index)
    ]
    figures = {
        "keys": retries.keys,
        "answers": retries.answers,
        "repeated_answers": retries.answers - retries.keys,
        "excluded_transient": retries.excluded,
        "without_digest": retries.without_digest,
    }
    missing = facts.missing()
    return judge(
        NAME, violations, missing=missing, figures=figures,
        failed="{n} idempotency keys were answered differently on retry",
        passed="every retry under an idempotency key got the same answer",
    )  # fmt: skip
