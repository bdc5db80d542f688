"""S3 (and S3-compatible stores) through boto3: one client per process, errors in words.

Every call goes through botocore's *standard* retry mode with a bounded budget, so a
connection reset, a 5xx or throttling is retried with exponential backoff, and a server
that stays away ends in a clear `StorageError` instead of a hang. Error text is composed
here from the error *code* only: the server's message and botocore's exception text are
never shown (some servers echo the access key id in them), so no credential can leak
through an error line, a log or the run record.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from pipeline.errors import FilmcolorError

# Environment knobs. They are read when a client is made, so Ray workers (which inherit
# the driver's environment, or get these through the job's runtime_env) behave alike.
ENV_ENDPOINT = "AWS_ENDPOINT_URL"
ENV_ATTEMPTS = "FILMCOLOR_S3_MAX_ATTEMPTS"  # botocore attempts per request (1 = no retry)
ENV_PART_SIZE = "FILMCOLOR_S3_PART_SIZE"  # bytes; multipart part size override (tests)
ENV_CHECKSUMS = "FILMCOLOR_S3_CHECKSUMS"  # "0" to skip S3 additional checksums

DEFAULT_ATTEMPTS = 10  # ~1 min of backoff at most (botocore caps a wait at 20 s)
MIN_PART = 5 << 20  # S3's minimum for every part but the last
DEFAULT_PART = 64 << 20  # 100 GB film -> 1,600 parts; few requests, modest memory
MAX_PARTS = 10_000  # S3's limit per upload


class StorageError(FilmcolorError):
    """A storage operation failed; the message names the URI and the reason in words.

    exit_code 2 when it concerns what the user gave (checked before any work starts);
    the job turns failures during the run into failed shards / films (exit 1)."""

    def __init__(self, uri: str, reason: str, user_input: bool = False):
        super().__init__(f"{uri}: {reason}")
        self.uri, self.reason, self.user_input = uri, reason, user_input
        self.exit_code = 2 if user_input else 1

    def __reduce__(self):  # crosses process boundaries (Ray tasks) intact
        return (StorageError, (self.uri, self.reason, self.user_input))


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


@dataclass(frozen=True)
class ClientSettings:
    endpoint_url: str | None
    region: str | None
    attempts: int

    @classmethod
    def from_env(cls) -> "ClientSettings":
        attempts = int(os.environ.get(ENV_ATTEMPTS) or DEFAULT_ATTEMPTS)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return cls(os.environ.get(ENV_ENDPOINT) or None, region, max(1, attempts))


_clients: dict = {}
_lock = threading.Lock()


def client():
    """The process's S3 client for the current settings (boto3 clients are thread-safe;
    making one costs ~50 ms, so actors reuse it)."""
    settings = ClientSettings.from_env()
    key = (os.getpid(), settings, _credentials_fingerprint())
    with _lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = _make_client(settings)
        return c


def _credentials_fingerprint() -> str:
    """Changes when the credentials in the environment change (a new client is needed);
    a digest, so the secret itself is not even kept in the cache key."""
    import hashlib

    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    return hashlib.sha256("\0".join(os.environ.get(n, "") for n in names).encode()).hexdigest()


def _make_client(s: ClientSettings):
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": s.attempts},
        connect_timeout=5,
        read_timeout=60,
        # S3-compatible stores mostly want path-style addressing (no bucket DNS names).
        s3={"addressing_style": "path"} if s.endpoint_url else {},
        # Only the checksums we ask for: newer botocore adds CRC32 to every upload by
        # default, which some S3-compatible servers reject.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=16,
        user_agent_extra="filmcolor",
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=s.endpoint_url, region_name=s.region or "us-east-1", config=config)


def endpoint_label() -> str:
    return ClientSettings.from_env().endpoint_url or "the S3 endpoint"


# --- errors -------------------------------------------------------------------------

_CODES = {
    "NoSuchKey": "no such key",
    "NoSuchBucket": "no such bucket",
    "NoSuchUpload": "the multipart upload is gone (aborted elsewhere?)",
    "AccessDenied": "access denied (check the credentials and the bucket policy)",
    "AllAccessDisabled": "access denied (check the credentials and the bucket policy)",
    "InvalidAccessKeyId": "the access key is not known to the server (check the credentials)",
    "SignatureDoesNotMatch": "the request signature does not match (wrong secret key? check the credentials)",
    "InvalidToken": "the session token is invalid (check the credentials)",
    "ExpiredToken": "the session token has expired (refresh the credentials)",
    "TokenRefreshRequired": "the session token has expired (refresh the credentials)",
    "InvalidBucketName": "not a valid bucket name",
    "PreconditionFailed": "the object changed while it was being read",
    "InvalidRange": "byte range outside the object",
    "EntityTooSmall": "multipart part too small for this server",
    "SlowDown": "the server kept throttling the requests (retries exhausted)",
    "RequestTimeout": "the server timed out (retries exhausted)",
    "InternalError": "the server kept failing with internal errors (retries exhausted)",
    "ServiceUnavailable": "the server kept answering 'service unavailable' (retries exhausted)",
}
_STATUS = {
    301: "the bucket is in another region (set AWS_REGION)",
    400: "the server rejected the request (HTTP 400)",
    403: "access denied (check the credentials)",
    404: "no such key",
    412: "the object changed while it was being read",
}


def describe(exc: BaseException) -> str:
    """A person's words for a boto3/botocore exception (never the exception's own text)."""
    import botocore.exceptions as bx

    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {}) or {}
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _CODES:
            return _CODES[code]
        if code.isdigit() and int(code) in _STATUS:
            return _STATUS[int(code)]
        if status in _STATUS:
            return _STATUS[status]
        if status >= 500:
            return f"the server kept failing (HTTP {status}, retries exhausted)"
        return f"the server refused the request ({code or 'HTTP %d' % status})"
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return f"cannot reach {endpoint_label()} (is the server running? retries exhausted)"
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectionClosedError, bx.ResponseStreamingError)):
        return f"the connection to {endpoint_label()} kept failing (retries exhausted)"
    if isinstance(exc, bx.NoCredentialsError):
        return "no credentials found (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role)"
    if isinstance(exc, (bx.PartialCredentialsError, bx.ProfileNotFound)):
        return "incomplete credentials configuration (check AWS_PROFILE / the credentials file)"
    if isinstance(exc, bx.ParamValidationError):
        return "not a valid S3 URI (bucket or key)"
    if isinstance(exc, (bx.InvalidRegionError, bx.InvalidEndpointConfigurationError)):
        return "invalid region or endpoint configuration"
    if isinstance(exc, bx.BotoCoreError):
        return f"storage request failed ({type(exc).__name__})"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"the connection to {endpoint_label()} kept failing ({type(exc).__name__})"
    return f"storage request failed ({type(exc).__name__})"


def is_not_found(exc: BaseException) -> bool:
    import botocore.exceptions as bx

    if not isinstance(exc, bx.ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


def is_boto_error(exc: BaseException) -> bool:
    import botocore.exceptions as bx

    return isinstance(exc, (bx.BotoCoreError, bx.ClientError))


def wrap(exc: BaseException, uri: str, user_input: bool = False) -> StorageError:
    return StorageError(uri, describe(exc), user_input)


def refine_not_found(uri: str, user_input: bool) -> StorageError:
    """A 404 on a key: say whether the bucket or the key is missing."""
    bucket, _ = split(uri)
    try:
        client().head_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - any failure is described in words
        code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
        if is_not_found(exc) or code == "NoSuchBucket":
            return StorageError(f"s3://{bucket}/", "no such bucket", user_input)
        return wrap(exc, f"s3://{bucket}/", user_input)
    return StorageError(uri, "no such key", user_input)


# --- multipart ---------------------------------------------------------------------

def part_size(total: int) -> int:
    """Part size for a `total`-byte upload: 64 MiB, larger where 10,000 parts would not do
    (a 1 TB film gets ~105 MiB parts), or FILMCOLOR_S3_PART_SIZE (tests force small parts)."""
    forced = os.environ.get(ENV_PART_SIZE)
    if forced:
        return max(1, int(forced))
    need = -(-total // (MAX_PARTS - 1))
    return max(DEFAULT_PART, -(-need // (1 << 20)) << 20)


def checksums_enabled() -> bool:
    return os.environ.get(ENV_CHECKSUMS, "1") != "0"
