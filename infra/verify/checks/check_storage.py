"""Storage and identity from a team pod: the object store grants the team's identity its own prefix alone."""

from __future__ import annotations

import pytest

from infra.verify.plugin import run_probe


def test_own_prefix_write_read_delete(team, deployment, pods, record):
    """The team's pod writes, reads back and deletes an object under its own prefix."""
    host = pods.container(pods.team_probe(team))
    answer = run_probe(host, "storage_probe", "own", deployment.profiles[team].root, deployment.run_id)
    assert answer["ok"], f"{answer['uri']}: read back {answer.get('read')!r}, or still there after delete"
    record(f"{answer['uri']}: written, read, deleted")


def test_other_team_prefix_is_denied(team, deployment, pods, record):
    """The team's pod is refused writing under another team's prefix (an authorization error, not a timeout)."""
    other = deployment.other_team(team)
    if other is None:
        pytest.skip("the stack has one team: no other team's prefix")
    host = pods.container(pods.team_probe(team))
    answer = run_probe(host, "storage_probe", "other", deployment.profiles[other].root, deployment.run_id)
    assert answer["ok"], f"{answer['uri']}: {answer['error']}"
    record(f"{answer['uri']}: {answer['error'][:120]}")
