"""The deployment files in infra/ hold together: no cluster and no Docker engine needed.

Parsed, not applied: every YAML in infra/ with PyYAML, the Dockerfile as text, the pins
from pyproject.toml with tomllib. What a mistake here would cost is a night's run that
never starts (wrong image, missing env) or dies half-way (too little memory or scratch).
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]

SECRET_NAME = "filmcolor-s3"
CONFIG_NAME = "filmcolor-config"
SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
CONFIG_KEYS = ("AWS_ENDPOINT_URL", "AWS_REGION")
SCRATCH = "/scratch"

# README: an actor's peak RSS, memnet (the default model) at 640x360 - the largest measured.
ACTOR_PEAK_MB = 537
HEADROOM = 1.5
# A shard is at most 1,000 frames; FFV1 1080p is up to ~3 GB per 1,000 frames.
SEGMENT_MAX_BYTES = 3e9

KNOWN_KINDS = {("ray.io/v1", "RayCluster"), ("ray.io/v1", "RayJob"), ("v1", "Secret"), ("v1", "ConfigMap")}
PLACEHOLDER = re.compile(r"^(REPLACE[_-]?ME|CHANGE[_-]?ME|<[^<>]+>)", re.IGNORECASE)
SECRETISH_ENV = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


# ---- helpers ------------------------------------------------------------------------------

_SUFFIXES = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE]([+-]?\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")


def quantity(q) -> float:
    """A Kubernetes resource quantity (`8Gi`, `500m`, `1.5`, `2e3`, `4`) as a number:
    bytes for memory and storage, cores for CPU."""
    if isinstance(q, bool):
        raise ValueError(f"not a quantity: {q!r}")
    if isinstance(q, (int, float)):
        return float(q)
    m = _QUANTITY.fullmatch(str(q).strip())
    if not m:
        raise ValueError(f"not a quantity: {q!r}")
    number, exponent, suffix = m.groups()
    if exponent is not None and suffix:
        raise ValueError(f"not a quantity: {q!r}")
    return float(number) * (10.0 ** int(exponent or 0)) * _SUFFIXES[suffix or ""]


def pins() -> dict[str, str]:
    """`name==version` pins of pyproject's dependencies, extras stripped: {'ray': '2.60.0'}."""
    out = {}
    for dep in PYPROJECT["project"]["dependencies"]:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*", dep)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def load_docs() -> dict[str, list[dict]]:
    files = sorted(INFRA.glob("*.yaml")) + sorted(INFRA.glob("*.yml"))
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d is not None] for p in files}


DOCS = load_docs()


def one(kind: str) -> dict:
    found = [d for docs in DOCS.values() for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in infra/, found {len(found)}"
    return found[0]


def cluster_specs() -> list[tuple[str, dict]]:
    return [("RayCluster.spec", one("RayCluster")["spec"]),
            ("RayJob.spec.rayClusterSpec", one("RayJob")["spec"]["rayClusterSpec"])]


def ray_groups(spec: dict):
    """(label, group spec) for the head group and each worker group."""
    yield "head", spec["headGroupSpec"]
    for g in spec["workerGroupSpecs"]:
        yield f"worker group {g['groupName']}", g


def ray_container(group: dict) -> dict:
    # KubeRay runs Ray in the first container of the pod template.
    return group["template"]["spec"]["containers"][0]


def all_pod_specs():
    """(where, pod spec) of every pod template in every manifest."""
    for label, spec in cluster_specs():
        for glabel, group in ray_groups(spec):
            yield f"{label} {glabel}", group["template"]["spec"]
    yield "RayJob submitter", one("RayJob")["spec"]["submitterPodTemplate"]["spec"]


def env_sources(container: dict) -> dict[str, tuple]:
    """name -> ('value', v) | ('secret', name, key) | ('configmap', name, key)."""
    out: dict[str, tuple] = {}
    for src in container.get("envFrom", []):
        if "secretRef" in src:
            out.update({k: ("secret", src["secretRef"]["name"], k) for k in SECRET_KEYS})
        if "configMapRef" in src:
            out.update({k: ("configmap", src["configMapRef"]["name"], k) for k in CONFIG_KEYS})
    for e in container.get("env", []):
        if "value" in e:
            out[e["name"]] = ("value", e["value"])
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            out[e["name"]] = ("secret", ref["name"], ref["key"])
        elif "configMapKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            out[e["name"]] = ("configmap", ref["name"], ref["key"])
        else:
            out[e["name"]] = ("other",)
    return out


def walk(node, path="$"):
    """Every (path, value) in a parsed YAML document."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in (INFRA / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        buf = ""
    return out


# ---- tests -----------------------------------------------------------------------------------


def test_quantity_parser():
    assert quantity("8Gi") == 8 * 2**30
    assert quantity("500m") == 0.5
    assert quantity("4") == 4 and quantity(4) == 4
    assert quantity("1.5G") == 1.5e9
    assert quantity("128974848") == 128974848
    assert quantity("129e6") == 129e6
    assert quantity("2E") == 2e18
    assert quantity("100Mi") == 100 * 2**20
    assert quantity("0.5Ki") == 512
    for bad in ("8GB", "Gi", "1.2.3", "", "8 Gi", "1e3Mi"):
        with pytest.raises(ValueError):
            quantity(bad)


def test_every_manifest_has_a_known_kind():
    assert {"raycluster.yaml", "rayjob.yaml", "secret.example.yaml", "configmap.yaml"} <= set(DOCS)
    for name, docs in DOCS.items():
        assert docs, f"{name}: empty"
        for d in docs:
            assert (d.get("apiVersion"), d.get("kind")) in KNOWN_KINDS, f"{name}: {d.get('apiVersion')} {d.get('kind')}"
            assert d.get("metadata", {}).get("name"), f"{name}: {d['kind']} without metadata.name"
    assert one("Secret")["metadata"]["name"] == SECRET_NAME
    assert one("ConfigMap")["metadata"]["name"] == CONFIG_NAME


def test_rayjob_runs_the_same_cluster_as_raycluster():
    assert one("RayJob")["spec"]["rayClusterSpec"] == one("RayCluster")["spec"]


def test_images_are_this_version():
    expected = f"filmcolor:{VERSION}"
    for where, pod in all_pod_specs():
        for c in pod["containers"]:
            assert c["image"] == expected, f"{where} {c['name']}: image {c['image']}, want {expected}"
    for label, spec in cluster_specs():
        assert spec.get("rayVersion") == pins()["ray"], f"{label}.rayVersion"


def test_ray_containers_get_s3_settings_from_the_secret_and_configmap():
    secret = one("Secret")
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    config_keys = set(one("ConfigMap")["data"])
    for label, spec in cluster_specs():
        envs = []
        for glabel, group in ray_groups(spec):
            c, where = ray_container(group), f"{label} {glabel}"
            env = env_sources(c)
            for k in SECRET_KEYS:
                assert env.get(k, ("",))[0] == "secret" and env[k][1] == SECRET_NAME, f"{where}: {k} not from {SECRET_NAME}"
                assert env[k][2] in secret_keys, f"{where}: {k} reads key {env[k][2]} that secret.example.yaml lacks"
            for k in CONFIG_KEYS:
                assert env.get(k, ("",))[0] == "configmap" and env[k][1] == CONFIG_NAME, f"{where}: {k} not from {CONFIG_NAME}"
                assert env[k][2] in config_keys, f"{where}: {k} reads key {env[k][2]} that configmap.yaml lacks"
            assert env.get("FILMCOLOR_SCRATCH") == ("value", SCRATCH), f"{where}: FILMCOLOR_SCRATCH"
            pod = group["template"]["spec"]
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert SCRATCH in mounts, f"{where}: nothing mounted at {SCRATCH}"
            vol = next(v for v in pod["volumes"] if v["name"] == mounts[SCRATCH])
            assert "emptyDir" in vol and quantity(vol["emptyDir"]["sizeLimit"]) > 0, f"{where}: scratch emptyDir sizeLimit"
            envs.append(env)
        assert all(e == envs[0] for e in envs), f"{label}: head and workers see different environments"


def test_ray_containers_request_resources_within_their_limits():
    for label, spec in cluster_specs():
        for glabel, group in ray_groups(spec):
            where, res = f"{label} {glabel}", ray_container(group).get("resources", {})
            requests, limits = res.get("requests", {}), res.get("limits", {})
            for k in ("cpu", "memory"):
                assert k in requests, f"{where}: no {k} request"
                assert k in limits, f"{where}: no {k} limit"
            for k in set(requests) & set(limits):
                assert quantity(requests[k]) <= quantity(limits[k]), f"{where}: {k} request {requests[k]} > limit {limits[k]}"


def test_worker_memory_and_scratch_fit_their_actors():
    for label, spec in cluster_specs():
        for g in spec["workerGroupSpecs"]:
            where = f"{label} worker group {g['groupName']}"
            assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], f"{where}: replicas/min/max"
            c, pod = ray_container(g), g["template"]["spec"]
            actors = int(g["rayStartParams"]["num-cpus"])  # one actor per CPU
            assert actors >= 1
            limits, requests = c["resources"]["limits"], c["resources"]["requests"]
            assert actors <= quantity(limits["cpu"]), f"{where}: {actors} Ray CPUs on {limits['cpu']} cores"
            need = actors * ACTOR_PEAK_MB * 1e6 * HEADROOM
            for which in (requests, limits):
                assert quantity(which["memory"]) >= need, f"{where}: {which['memory']} < {actors} x {ACTOR_PEAK_MB} MB x {HEADROOM}"
            volumes = {v["name"]: v for v in pod["volumes"]}
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            scratch = quantity(volumes[mounts[SCRATCH]]["emptyDir"]["sizeLimit"])
            assert scratch >= actors * SEGMENT_MAX_BYTES, f"{where}: scratch {scratch:.3g} B < {actors} segments"
            # The object store must fit /dev/shm (else Ray falls back to disk) and the memory.
            store = quantity(g["rayStartParams"].get("object-store-memory", 0))
            if "/dev/shm" in mounts and store:
                shm = volumes[mounts["/dev/shm"]]["emptyDir"]
                assert shm.get("medium") == "Memory"
                assert store <= quantity(shm["sizeLimit"]), f"{where}: object store larger than /dev/shm"
            assert store + need <= quantity(limits["memory"]), f"{where}: object store + actors exceed the memory limit"


def test_head_takes_no_actors_and_serves_the_dashboard():
    for label, spec in cluster_specs():
        params = spec["headGroupSpec"]["rayStartParams"]
        assert params["num-cpus"] == "0", f"{label}: head num-cpus must be the string \"0\""
        assert params["dashboard-host"] == "0.0.0.0", f"{label}: dashboard-host"
        assert all(isinstance(v, str) for v in params.values()), f"{label}: rayStartParams values must be strings"
        for g in spec["workerGroupSpecs"]:
            assert all(isinstance(v, str) for v in g["rayStartParams"].values())


def test_rayjob_entrypoint_and_lifecycle():
    job = one("RayJob")["spec"]
    argv = shlex.split(job["entrypoint"])
    assert argv[0] in ("python", "python3"), argv
    script = ROOT / argv[1]
    assert script.is_file(), f"entrypoint names {argv[1]}, not a file of the repository"
    assert argv[1] == "jobs/run.py"
    assert argv[2].startswith("s3://"), f"the manifest should be an s3:// URI, got {argv[2]}"
    if "--run-dir" in argv:
        assert argv[argv.index("--run-dir") + 1].startswith("s3://")
    assert job["shutdownAfterJobFinishes"] is True
    assert isinstance(job["ttlSecondsAfterFinished"], int) and 0 <= job["ttlSecondsAfterFinished"] <= 3600
    assert isinstance(job["backoffLimit"], int) and 0 <= job["backoffLimit"] <= 5
    assert isinstance(job["activeDeadlineSeconds"], int) and 3600 <= job["activeDeadlineSeconds"] <= 24 * 3600
    submitter = job["submitterPodTemplate"]["spec"]
    assert submitter["restartPolicy"] == "Never"
    # the entrypoint is relative: it runs in the Ray containers' working dir, the image's WORKDIR
    workdir = [a for i, a in dockerfile_instructions() if i == "WORKDIR"][-1]
    for label, spec in cluster_specs():
        for glabel, group in ray_groups(spec):
            assert ray_container(group).get("workingDir", workdir) == workdir, f"{label} {glabel}: workingDir"


def test_no_secret_values_in_any_manifest():
    aws_key_id = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
    secret_40 = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
    for name, docs in DOCS.items():
        text = (INFRA / name).read_text()
        assert not aws_key_id.search(text), f"{name}: looks like an AWS access key id"
        for cand in secret_40.findall(text):
            mixed = re.search(r"[a-z]", cand) and re.search(r"[A-Z]", cand) and re.search(r"\d", cand)
            assert not mixed, f"{name}: {cand[:4]}... looks like a secret access key"
        for d in docs:
            if d["kind"] == "Secret":
                values = dict(d.get("stringData", {}))
                values.update({k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()})
                for k, v in values.items():
                    assert PLACEHOLDER.match(str(v)), f"{name}: {k} is not an obvious placeholder"
            if d["kind"] == "ConfigMap":
                for k in d.get("data", {}):
                    assert not SECRETISH_ENV.search(k), f"{name}: {k} belongs in a Secret"
            for path, node in walk(d):
                if isinstance(node, dict) and "name" in node and "value" in node and SECRETISH_ENV.search(str(node["name"])):
                    raise AssertionError(f"{name}: {path} sets {node['name']} inline; use a secretKeyRef")


def test_dockerfile_pins_what_pyproject_pins():
    ins = dockerfile_instructions()
    assert ins[0] == ("FROM", "python:3.11-slim-bookworm")
    runs = [a for i, a in ins if i == "RUN"]
    torch_at = next(n for n, a in enumerate(runs) if "torch==" in a)
    assert f"torch=={pins()['torch']}" in runs[torch_at].split()
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_at]
    project_at = next(n for n, a in enumerate(runs) if re.search(r"pip install (?:\S+ )*\.(?:\s|$)", a))
    assert torch_at < project_at, "torch (CPU build) must be installed before the project"
    # every `name==version` the Dockerfile names agrees with pyproject's pin of that name
    text = " ".join(runs)
    named = {m.group(1).lower(): m.group(2) for m in re.finditer(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([0-9][^\s\"']*)", text)}
    assert named.get("ray") == pins()["ray"], f"Dockerfile ray {named.get('ray')} vs pyproject {pins()['ray']}"
    for pkg, ver in named.items():
        if pkg in pins():
            assert ver == pins()[pkg], f"Dockerfile pins {pkg}=={ver}, pyproject {pins()[pkg]}"
    copied = " ".join(a for i, a in ins if i == "COPY")
    for path in ("pipeline/", "jobs/", "manifests/", "pyproject.toml", "README.md"):
        assert path in copied, f"Dockerfile does not copy {path}"
    env = " ".join(a for i, a in ins if i == "ENV")
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)
    user = [a for i, a in ins if i == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert [a for i, a in ins if i == "WORKDIR"], "no WORKDIR"


def test_dockerfile_bakes_in_no_credentials():
    ins = dockerfile_instructions()
    for i, a in ins:
        if i in ("COPY", "ADD"):
            srcs = [s for s in a.split() if not s.startswith("--")][:-1]
            assert "." not in srcs and "./" not in srcs, "COPY of the whole context"
            assert not any(".aws" in s or "credentials" in s for s in srcs), f"{i} {a}"
        if i in ("ENV", "ARG"):
            assert not re.search(r"AWS_(SECRET_ACCESS_KEY|ACCESS_KEY_ID|SESSION_TOKEN)", a), f"{i} {a}"
    text = (INFRA / "Dockerfile").read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text and ".aws" not in text
    ignore = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert "**/.aws" in ignore
