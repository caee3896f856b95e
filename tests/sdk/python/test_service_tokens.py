"""Access service tokens through the official Python SDK."""

import hashlib
import re
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone

import cloudflare
import pytest

SERVICE_TOKENS_READ = "91f7ce32fa614d73b7e1fc8f0e78582b"


def stored_secrets(server, token_id):
    """(secret_hash, previous_secret_hash, previous_secret_expires_at) as the database holds them."""
    sql = ("SELECT secret_hash, previous_secret_hash, previous_secret_expires_at "
           f"FROM access_service_tokens WHERE id = '{token_id}'")
    if server.database_url.startswith("sqlite://"):
        with sqlite3.connect(server.database_url.removeprefix("sqlite://")) as db:
            return db.execute(sql).fetchone()
    out = subprocess.run(["psql", server.database_url, "-AtF", "|", "-c", sql],
                         check=True, capture_output=True, text=True).stdout.strip()
    current, previous, until = out.split("|")
    return current, previous or None, int(until) if until else None


def sha256(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def test_service_token_lifecycle(server, admin):
    account = admin.accounts.create(name="Service token home")
    tokens = admin.zero_trust.access.service_tokens

    created = tokens.create(account_id=account.id, name="CI runner", duration="8760h", enabled=True,
                            client_secret_version=1)
    assert re.fullmatch(r"[0-9a-f]{32}\.access", created.client_id)
    assert re.fullmatch(r"cfast_[0-9A-Za-z]{48}", created.client_secret)
    assert created.name == "CI runner" and created.duration == "8760h" and created.enabled is True
    assert created.model_extra["last_seen_at"] is None
    assert created.model_extra["expires_at"] is not None

    # Stored only as its SHA-256, and never shown again.
    current, previous, _ = stored_secrets(server, created.id)
    assert current == sha256(created.client_secret) and previous is None
    fetched = tokens.get(created.id, account_id=account.id)
    assert fetched.id == created.id and fetched.client_id == created.client_id
    assert "client_secret" not in fetched.model_dump() and not getattr(fetched, "client_secret", None)
    assert fetched.expires_at is not None

    for i in range(4):
        tokens.create(account_id=account.id, name=f"batch {i}")
    listed = list(tokens.list(account_id=account.id, per_page=2))
    assert [t.name for t in listed] == ["CI runner"] + [f"batch {i}" for i in range(4)]
    assert all(not getattr(t, "client_secret", None) for t in listed)
    assert [t.id for t in tokens.list(account_id=account.id, name="ci runner")] == [created.id]
    assert [t.name for t in tokens.list(account_id=account.id, search="BATCH 3")] == ["batch 3"]

    updated = tokens.update(created.id, account_id=account.id, name="CI", duration="1h")
    assert updated.name == "CI" and updated.duration == "1h" and updated.enabled is True
    assert updated.expires_at < fetched.expires_at

    refreshed = tokens.refresh(created.id, account_id=account.id)
    assert refreshed.expires_at > updated.expires_at

    deleted = tokens.delete(created.id, account_id=account.id)
    assert deleted.id == created.id and deleted.name == "CI"
    with pytest.raises(cloudflare.NotFoundError):
        tokens.get(created.id, account_id=account.id)


def test_rotation_keeps_the_old_secret_for_the_grace_period(server, admin):
    account = admin.accounts.create(name="Rotation home")
    tokens = admin.zero_trust.access.service_tokens
    created = tokens.create(account_id=account.id, name="deploy")

    immediate = tokens.rotate(created.id, account_id=account.id)
    assert immediate.client_id == created.client_id
    assert immediate.client_secret != created.client_secret
    assert stored_secrets(server, created.id) == (sha256(immediate.client_secret), None, None)

    until = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    graceful = tokens.rotate(created.id, account_id=account.id, previous_client_secret_expires_at=until)
    current, previous, expires = stored_secrets(server, created.id)
    assert current == sha256(graceful.client_secret)
    assert previous == sha256(immediate.client_secret)
    assert expires == int(until.timestamp()) * 1_000_000
    assert graceful.model_extra["previous_client_secret_expires_at"] == until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert graceful.model_extra["client_secret_version"] == 3

    # Bumping the version in an update rotates too; the new secret is in the answer.
    bumped = tokens.update(created.id, account_id=account.id, client_secret_version=4)
    assert stored_secrets(server, created.id)[0] == sha256(bumped.model_extra["client_secret"])

    with pytest.raises(cloudflare.BadRequestError):
        tokens.rotate(created.id, account_id=account.id,
                      previous_client_secret_expires_at=datetime.now(timezone.utc) + timedelta(days=45))


def test_the_read_group_cannot_write(server, admin):
    account = admin.accounts.create(name="Read only")
    created = admin.zero_trust.access.service_tokens.create(account_id=account.id, name="t")
    reader = admin.accounts.tokens.create(
        account_id=account.id, name="reader",
        policies=[{"effect": "allow", "permission_groups": [{"id": SERVICE_TOKENS_READ}],
                   "resources": {f"com.cloudflare.api.account.{account.id}": "*"}}],
    )
    tokens = server.client(reader.value).zero_trust.access.service_tokens
    assert tokens.get(created.id, account_id=account.id).id == created.id
    with pytest.raises(cloudflare.PermissionDeniedError):
        tokens.rotate(created.id, account_id=account.id)
    with pytest.raises(cloudflare.PermissionDeniedError):
        tokens.create(account_id=account.id, name="nope")
