"""Every storage failure a user can meet, as one line in words, never a credential."""

from __future__ import annotations

import socket

import pytest

from pipeline import storage
from pipeline.storage import s3

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _error(fn, *args) -> storage.StorageError:
    with pytest.raises(storage.StorageError) as info:
        fn(*args)
    return info.value


def test_missing_key_and_missing_bucket(s3_server, s3_bucket):
    e = _error(storage.check_readable, f"s3://{s3_bucket}/f/nope.mkv")
    assert str(e) == f"s3://{s3_bucket}/f/nope.mkv: no such key" and e.exit_code == 2
    e = _error(storage.check_readable, "s3://no-such-bucket-fc/f/film.mkv")
    assert str(e) == "s3://no-such-bucket-fc/: no such bucket"
    e = _error(storage.check_writable, "s3://no-such-bucket-fc/f/out.mkv")
    assert str(e) == "s3://no-such-bucket-fc/: no such bucket"
    assert storage.exists(f"s3://{s3_bucket}/f/nope.mkv") is False


def test_access_denied_and_wrong_secret(s3_server, s3_bucket, monkeypatch):
    s3_server.client().put_object(Bucket=s3_bucket, Key="in.mkv", Body=b"x")
    ro_key, ro_secret = s3_server.readonly_key
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ro_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ro_secret)
    storage.check_readable(f"s3://{s3_bucket}/in.mkv")  # reading is allowed
    e = _error(storage.check_writable, f"s3://{s3_bucket}/out.mkv")
    assert str(e).startswith(f"s3://{s3_bucket}/: access denied") and e.exit_code == 2
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-QQ7")
    e = _error(storage.check_readable, f"s3://{s3_bucket}/in.mkv")
    assert "wrong secret key" in str(e) and "check the credentials" in str(e)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY123")
    e = _error(storage.check_readable, f"s3://{s3_bucket}/in.mkv")
    assert "access key is not known" in str(e)
    for secret in ("wrong-secret-QQ7", ro_secret, s3_server.secret_key, "NOSUCHKEY123", ro_key):
        assert secret not in str(e)


def test_unreachable_endpoint_fails_fast_within_the_budget(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv(s3.ENV_ATTEMPTS, "2")
    e = _error(storage.check_readable, "s3://film-in/f/film.mkv")
    assert "cannot reach http://127.0.0.1:" in str(e) and "is the server running" in str(e)


def test_bad_uris(s3_server):
    assert "no bucket" in str(_error(storage.check_readable, "s3:///key.mkv"))
    assert "needs a key" in str(_error(storage.check_writable, "s3://bucket-x/"))
