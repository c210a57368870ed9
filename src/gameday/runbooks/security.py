"""``security`` (playbook 002's security incident): what one source did, where one account
was used from, and revoking the tokens of the accounts involved.

The evidence is the service's ``access_log`` table: who asked for what, from which
address, and the answer (no bodies, headers or tokens are kept there). Without a scope the
diagnosis ranks the sources of the last ``--since`` seconds by refused authentication
(password guessing, stolen or revoked tokens tried) and suggests one. With ``--source S``
every account that S used with a live token (accepted, and issued after the account's last
revocation, if any) is proposed for revocation; with ``--user U``, that account if it has
live tokens or was never revoked. A use after a revocation with a token from before it is
a dead token still in flight (workers learn of a revocation within a couple of seconds),
not a live one; so a second run finds nothing to do until the account gets a new token (a
fresh login: the password may be known too, which the notes say).

With ``--lock`` the accounts are locked as well (their tokens revoked and their logins
refused until an operator unlocks them): containment for a leaked password until its owner
resets it. An account is then contained once it is locked and has no live token.

Blocking the address belongs to the edge (firewall, WAF), not to this service; the notes
say so rather than pretend. The addresses are shown to the operator and kept in their
plans and audit trail, never in a drill report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gameday.runbooks.context import RunbookError, Runtime, utc
from gameday.runbooks.model import Change, Diagnosis, Finding

DEFAULT_SINCE_S = 3600.0
SUSPICIOUS_REFUSALS = 10
"""Refused authentications (401/403) from one source in the window that make it a finding."""
_LIMIT = 20

_SOURCES = (
    "SELECT source, COUNT(*) AS n, "
    "SUM(CASE WHEN status IN (401, 403) THEN 1 ELSE 0 END) AS refused, "
    "SUM(CASE WHEN route = '/auth/token' AND status = 401 THEN 1 ELSE 0 END) AS failed_logins, "
    "SUM(CASE WHEN status = 429 THEN 1 ELSE 0 END) AS limited, "
    "COUNT(DISTINCT user_id) AS accounts, MIN(at) AS first_at, MAX(at) AS last_at "
    "FROM access_log WHERE at >= :since GROUP BY source "
    "ORDER BY refused DESC, n DESC LIMIT 20"
)
_ROUTES = (
    "SELECT method, route, status, COUNT(*) AS n, MIN(at) AS first_at, MAX(at) AS last_at "
    "FROM access_log WHERE {column} = :value AND at >= :since "
    "GROUP BY method, route, status ORDER BY n DESC LIMIT 20"
)
# A request that named a user and was not answered 401 was made with a token the service
# accepted. 401s that name a user are tokens refused as revoked.
_ACCOUNTS_OF_SOURCE = (
    "SELECT a.user_id, COUNT(*) AS n, MAX(a.token_issued_at) AS newest_token, "
    "u.tokens_valid_after, u.locked_at FROM access_log a JOIN users u ON u.id = a.user_id "
    "WHERE a.source = :source AND a.at >= :since AND a.status <> 401 "
    "GROUP BY a.user_id, u.tokens_valid_after, u.locked_at ORDER BY a.user_id"
)
_SOURCES_OF_USER = (
    "SELECT source, COUNT(*) AS n, "
    "SUM(CASE WHEN status = 401 THEN 1 ELSE 0 END) AS refused, "
    "MIN(at) AS first_at, MAX(at) AS last_at "
    "FROM access_log WHERE user_id = :user AND at >= :since "
    "GROUP BY source ORDER BY n DESC LIMIT 20"
)
_USER = "SELECT id, tokens_valid_after, locked_at FROM users WHERE id = :user"
_NEWEST_ISSUED = (
    "SELECT MAX(token_issued_at) AS newest_token FROM access_log "
    "WHERE user_id = :user AND status <> 401"
)
_REVOKED_PRESENTED = (
    "SELECT COUNT(*) AS n FROM access_log "
    "WHERE {column} = :value AND at >= :since AND status = 401 AND user_id IS NOT NULL"
)


def _iso(value: Any) -> str | None:
    return None if value is None else utc(value).isoformat(timespec="seconds")


def _contained(valid_after: Any, newest_token: Any) -> bool:
    """Revoked, and no token issued since has been used: every token seen is dead."""
    if valid_after is None:
        return False
    return newest_token is None or utc(newest_token) < utc(valid_after)


@dataclass
class _Found:
    findings: list[Finding] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def _contain(
    rt: Runtime, user_id: int, account: Any, newest_token: Any, *, why: str, out: _Found
) -> None:
    """Plan what the account still needs: a revocation, or with ``--lock`` a lock (which
    revokes too). Its state goes into the facts, so a change before the apply is drift."""
    lock = bool(rt.scope.get("lock"))
    out.facts[f"user:{user_id}"] = _iso(account["tokens_valid_after"])
    if lock:
        out.facts[f"locked:{user_id}"] = account["locked_at"] is not None
    done = _contained(account["tokens_valid_after"], newest_token) and (
        not lock or account["locked_at"] is not None
    )
    if done or f"user:{user_id}" in {c.subject for c in out.changes}:
        return
    action = "lock_account" if lock else "revoke_tokens"
    out.changes.append(Change(action, f"user:{user_id}", why, rows=1, detail={"user_id": user_id}))


async def diagnose(rt: Runtime) -> Diagnosis:
    since_s = float(rt.scope.get("since_s") or DEFAULT_SINCE_S)
    since = rt.db_now() - timedelta(seconds=since_s)
    source: str | None = rt.scope.get("source")
    user: int | None = rt.scope.get("user")
    checked = [f"requests per source over the last {since_s:g} s, by refused authentication"]
    out = _Found()
    notes: list[str] = []

    ranked = await rt.rows(_SOURCES, since=since)
    noisy = [r for r in ranked if int(r["refused"] or 0) >= SUSPICIOUS_REFUSALS]
    if noisy:
        out.findings.append(
            Finding(
                f"{len(noisy)} source(s) with {SUSPICIOUS_REFUSALS} or more refused "
                "authentications",
                [_source_row(r) for r in noisy[:_LIMIT]],
            )
        )
    if source is not None:
        checked += [f"what {source} asked for", f"accounts {source} used with accepted tokens"]
        await _scope_source(rt, source, since, out)
    if user is not None:
        checked += [f"where user {user} was used from", f"whether user {user} is contained"]
        await _scope_user(rt, user, since, out)
    if source is None and user is None:
        if noisy:
            notes.append(
                f"to contain: gameday runbook security --source {noisy[0]['source']} "
                "(revokes the tokens of every account it used)"
            )
        invariants = {"suspicious_sources": len(noisy)}
    else:
        invariants = {"accounts_to_contain": len(out.changes)}
    if out.facts and not rt.scope.get("lock"):
        notes.append(
            "revoking ends sessions, not the knowledge of a password: add --lock to refuse "
            "the accounts' logins too until their owners reset their passwords"
        )
    elif out.facts:
        notes.append(
            "a locked account stays locked until POST /admin/users/{id}/unlock, once its "
            "owner has reset the password"
        )
    if source is not None:
        notes.append(f"block {source} at the edge (firewall, WAF) if it keeps going")
    return Diagnosis("security", checked, out.findings, out.changes, out.facts, invariants, notes)


async def _scope_source(rt: Runtime, source: str, since: datetime, out: _Found) -> None:
    routes = await rt.rows(_ROUTES.format(column="source"), value=source, since=since)
    if routes:
        total = sum(int(r["n"]) for r in routes)
        out.findings.append(
            Finding(
                f"{source} made {total} request(s) in the window (by route and answer)",
                [_route_row(r) for r in routes],
            )
        )
    presented = await rt.rows(_REVOKED_PRESENTED.format(column="source"), value=source, since=since)
    _presented(presented, f"from {source}", out.findings)
    why = f"used from {source} with an accepted token"
    for used in await rt.rows(_ACCOUNTS_OF_SOURCE, source=source, since=since):
        _contain(rt, int(used["user_id"]), used, used["newest_token"], why=why, out=out)
    if out.changes:
        still = "are not contained" if rt.scope.get("lock") else "still have live tokens"
        out.findings.append(
            Finding(
                f"{len(out.changes)} account(s) used from {source} {still}",
                [{"user_id": c.detail["user_id"]} for c in out.changes[:_LIMIT]],
            )
        )


async def _scope_user(rt: Runtime, user: int, since: datetime, out: _Found) -> None:
    found = await rt.rows(_USER, user=user)
    if not found:
        raise RunbookError(f"no user {user} in the target's database")
    sources = await rt.rows(_SOURCES_OF_USER, user=user, since=since)
    if sources:
        out.findings.append(
            Finding(
                f"user {user} was used from {len(sources)} source(s) in the window",
                [
                    {
                        "source": r["source"],
                        "requests": int(r["n"]),
                        "refused": int(r["refused"] or 0),
                        "first": _iso(r["first_at"]),
                        "last": _iso(r["last_at"]),
                    }
                    for r in sources
                ],
            )
        )
    presented = await rt.rows(_REVOKED_PRESENTED.format(column="user_id"), value=user, since=since)
    _presented(presented, f"for user {user}", out.findings)
    newest_token = (await rt.rows(_NEWEST_ISSUED, user=user))[0]["newest_token"]
    _contain(rt, user, found[0], newest_token, why="named by --user", out=out)


def _presented(rows: list[Any], where: str, findings: list[Finding]) -> None:
    count = int(rows[0]["n"] or 0) if rows else 0
    if count:
        findings.append(Finding(f"revoked tokens were presented {count} time(s) {where}"))


def _source_row(r: Any) -> dict[str, Any]:
    return {
        "source": r["source"],
        "requests": int(r["n"]),
        "refused": int(r["refused"] or 0),
        "failed_logins": int(r["failed_logins"] or 0),
        "rate_limited": int(r["limited"] or 0),
        "accounts": int(r["accounts"] or 0),
        "first": _iso(r["first_at"]),
        "last": _iso(r["last_at"]),
    }


def _route_row(r: Any) -> dict[str, Any]:
    return {
        "request": f"{r['method']} {r['route']}",
        "status": int(r["status"]),
        "count": int(r["n"]),
        "first": _iso(r["first_at"]),
        "last": _iso(r["last_at"]),
    }


_ENDPOINTS = {"revoke_tokens": "revoke-tokens", "lock_account": "lock"}


async def revoke(rt: Runtime, change: Change, incident: str) -> str:
    endpoint = _ENDPOINTS.get(change.action)
    if endpoint is None:
        raise RunbookError(f"security cannot {change.action}")
    user_id = int(change.detail["user_id"])
    found = await rt.admin(
        "POST",
        f"/admin/users/{user_id}/{endpoint}",
        json={"reason": f"{incident}: {change.why}"[:200]},
        what=f"{change.action.replace('_', ' ')} of user {user_id}",
    )
    locked = " and its logins refused" if change.action == "lock_account" else ""
    return (
        f"tokens of user {user_id} issued before {found.get('tokens_valid_after')} refused{locked}"
    )
