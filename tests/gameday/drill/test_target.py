"""Target profiles: a team's system described in YAML, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameday.drill.target import SAFEGUARD_FLAGS, Target, TargetError, load_profile

_PROFILE = """
name: our staging on this box
base_url: http://127.0.0.1:8000/
instances: {a: "http://127.0.0.1:8001", b: "http://localhost:8002"}
password_env: DRILL_PASSWORD
admin_token_env: DRILL_ADMIN
database_url_env: DRILL_DB
provider: {url: "http://127.0.0.1:12111", key_env: DRILL_STRIPE}
paths: {pay: "/orders/{id}/pay"}
metrics: {requests: "http_requests_total"}
"""


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRILL_PASSWORD", "pw")
    monkeypatch.setenv("DRILL_ADMIN", "adm")
    monkeypatch.setenv("DRILL_DB", "postgresql://postgres@127.0.0.1/x")
    monkeypatch.setenv("DRILL_STRIPE", "sk_test_x")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


@pytest.mark.usefixtures("secrets")
def test_a_profile_reads_paths_names_and_secrets_from_the_environment(tmp_path: Path) -> None:
    target = load_profile(_write(tmp_path, _PROFILE))
    assert target.base_url == "http://127.0.0.1:8000"
    assert target.paths.pay == "/orders/{id}/pay"
    assert target.paths.hold == "/bookings"  # the reference service's default
    assert target.metric_names.requests == "http_requests_total"
    assert (target.password, target.admin_token, target.provider_key) == ("pw", "adm", "sk_test_x")
    assert target.safeguard_flags == SAFEGUARD_FLAGS
    described = str(target.describe())
    assert "pw" not in described
    assert "sk_test_x" not in described


@pytest.mark.usefixtures("secrets")
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("base_url: http://127.0.0.1:8000/", "base_url: http://10.0.0.5:8000"), "loopback only"),
        (('b: "http://localhost:8002"', 'b: "http://example.com"'), "instances.b"),
        (("name: our", "colour: red\nname: our"), "unknown field `colour`"),
        (("paths: {pay:", "paths: {payy:"), "unknown field `paths.payy`"),
        (("password_env: DRILL_PASSWORD", "password_env: NOT_SET_ANYWHERE"), "NOT_SET_ANYWHERE"),
        (("name: our staging on this box", "name: 7"), "`name` must be a non-empty string"),
        (("instances: {", "instances: [1, 2]\nx: {"), "unknown field `x`"),
    ],
)
def test_a_bad_profile_is_one_clear_error(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(TargetError, match=message):
        load_profile(_write(tmp_path, _PROFILE.replace(*change)))


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="not YAML"):
        load_profile(_write(tmp_path, "name: [unclosed"))
    with pytest.raises(TargetError, match="cannot read"):
        load_profile(tmp_path / "absent.yaml")


def test_credentials_in_urls_never_reach_the_description() -> None:
    target = Target("t", "http://127.0.0.1:1", {"a": "http://u:p@127.0.0.1:2"}, "pw", "adm",
                    provider_url="http://key:secret@127.0.0.1:3",
                    prometheus_url="http://admin:hunter2@127.0.0.1:9090")  # fmt: skip
    described = str(target.describe())
    for secret in ("secret", "hunter2", "u:p", "pw", "adm"):
        assert secret not in described
    assert "127.0.0.1:9090" in described
