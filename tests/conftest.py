"""Shared fixtures: one real local Ray cluster per session, small synthetic films."""

from __future__ import annotations

import os

import pytest

from pipeline.synth import SynthScene, save_png, write_film

SCENES3 = [
    SynthScene("astronaut", 18, pan=(2.0, 0.5)),
    SynthScene("coffee", 14, pan=(-2.0, 1.0)),
    SynthScene("chelsea", 16, pan=(1.0, -0.5)),
]


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster with 2 CPUs, started once for the session."""
    import ray

    from pipeline.cluster import init_ray

    init_ray(workers=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def film3(tmp_path_factory):
    """A 48-frame gray film, three shots with motion and hard cuts, AAC stereo audio;
    colour ground truth and exemplar PNGs (one mid-scene) beside it."""
    d = tmp_path_factory.mktemp("film3")
    film = write_film(str(d / "bw.mkv"), SCENES3, 160, 96, pix_fmt="gray", keep_colour=True,
                      timecode="10:00:00:00")
    starts = [0] + film.cuts
    film.exemplars = []
    for k, (s, at) in enumerate(zip(starts, (0, 7, 3))):
        png = str(d / f"ex{k}.png")
        save_png(png, film.colour[s + at])
        film.exemplars.append(f"{png}@{s + at}")
    return film


def read_only(path: str) -> None:
    os.chmod(path, 0o444)


# ---- a real S3 server (SeaweedFS `weed mini`, see tests/s3server.py) ---------------------
#
# Ordering with Ray: a Ray worker sees the os.environ of the process at ray.init() time
# only (checked: variables set in the driver after init_ray() are missing in tasks, even in
# workers and actors spawned later; pipeline.cluster.init_ray also snapshots
# AWS_ENDPOINT_URL/AWS_REGION into its runtime_env then).  So the AWS_* variables must be in
# os.environ before ray_cluster starts.  Two guards, without touching ray_cluster itself:
#  1. pytest_fixture_setup below: when ray_cluster is about to be set up and any selected test
#     uses s3_server / s3_bucket, s3_server is set up first.
#  2. s3_server itself: if Ray is already initialized in this process anyway (started by
#     something else), it shuts Ray down and re-inits it with the same CPU count, so that
#     the workers inherit the S3 settings.

S3_ACCESS_KEY = "FCTESTKEY7Q2Z"
S3_SECRET_KEY = "fc-secret-Zq9w-DO-NOT-LEAK"
S3_READONLY_KEY = ("FCREADONLY8K3M", "fc-ro-secret-Xy7-DO-NOT-LEAK")
_S3_FIXTURES = ("s3_server", "s3_bucket")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.argname == "ray_cluster" and any(
            name in getattr(item, "fixturenames", ())
            for item in request.session.items for name in _S3_FIXTURES):
        request.getfixturevalue("s3_server")
    yield


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One weed mini S3 server for the session; os.environ points at it (AWS_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION) until the end
    of the session, with profile/config-file/session-token variables cleared.
    `s3_server.readonly_client()` is an identity that may only read and list."""
    from s3server import INTERFERING_ENV, S3Server

    root = tmp_path_factory.mktemp("s3server")
    srv = S3Server(str(root), S3_ACCESS_KEY, S3_SECRET_KEY, readonly_key=S3_READONLY_KEY)
    srv.start()
    saved = dict(os.environ)
    for k in INTERFERING_ENV:
        os.environ.pop(k, None)
    # no ~/.aws files, no instance-metadata lookups
    os.environ["AWS_CONFIG_FILE"] = str(root / "no-aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(root / "no-aws-credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ.update(srv.env())
    _reinit_ray_if_running()
    try:
        yield srv
    finally:
        srv.stop()
        os.environ.clear()
        os.environ.update(saved)


def _reinit_ray_if_running() -> None:
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    import warnings

    from pipeline.cluster import init_ray

    cpus = int(ray.cluster_resources().get("CPU", 0)) or None
    warnings.warn("s3_server: Ray was already running; restarting it so that its workers "
                  "inherit the S3 environment")
    ray.shutdown()
    init_ray(workers=cpus)


@pytest.fixture
def s3_bucket(s3_server, request):
    """A fresh, uniquely named, empty bucket on the session server (deleted afterwards,
    best effort, with whatever is in it)."""
    import re
    import uuid

    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    name = f"t-{stem or 'b'}-{uuid.uuid4().hex[:10]}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=name)
    yield name
    try:
        if s3_server.running:
            # allowDeleteBucketNotEmpty is on in weed mini: this removes the objects too
            s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - cleanup only
        pass
