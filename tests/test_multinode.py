"""A real multi-node Ray cluster on this machine: a submitted job survives losing a node.

The cluster is three `ray start` process trees (a head and two worker nodes, 1 CPU each),
each with its own --temp-dir and ports, so it never touches /tmp/ray (where `ray.init()`
without an address would find it: other tests' embedded clusters must not join it).

How the nodes' processes are found: every `ray start` runs with FCTEST_RAY_NODE=<token>:<node>
in its environment. Everything Ray forks from it (GCS, raylet, agents, log monitor, the
workers the raylet starts, the job driver) inherits that variable, and /proc/<pid>/environ
keeps it even after Ray renames the process (`ray::IDLE`, `ray::_StageActor.process`). A node
is "lost" by SIGKILLing exactly the processes carrying its token (raylet first), plus their
descendants; teardown does the same for the whole token. No `ray stop` (machine-wide: it
would kill the other tests' clusters). The variable is deliberately not FILMCOLOR_*:
pipeline.cluster.init_ray forwards those to every worker, which would re-label them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pipeline.io import probe
from pipeline.record import read_table
from pipeline.synth import SynthScene, save_png, write_film

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
RAY = str(Path(sys.executable).with_name("ray"))
TOKEN_VAR = "FCTEST_RAY_NODE"
WORKER_NODES = ("b", "c")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ACTOR_TITLE = re.compile(r"ray::_?StageActor(\.process)?\b")  # pipeline.cluster's colour actors

# 8 shots x 40 frames at 320x180 with `flow`: 8 shards on 2 actors, 4 rounds. A shard takes
# 1.5-4 s on an idle 2-core machine, ~10 s on a loaded one; the first segment lands with
# 6 or 7 shards still to do, so the node is lost mid-run either way.
SHOTS = [("astronaut", (1.5, 0.5)), ("coffee", (-1.5, 0.5)), ("chelsea", (1.0, -0.5)),
         ("rocket", (0.5, 1.0)), ("immunohistochemistry", (-1.0, 0.5)), ("astronaut", (-1.0, -0.5)),
         ("coffee", (1.0, 1.0)), ("chelsea", (-0.5, 1.0))]
SHOT_FRAMES, WIDTH, HEIGHT = 40, 320, 180


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _base_env() -> dict:
    """This process's environment without anything that points Ray somewhere else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != TOKEN_VAR}
    # Explicit, so that ~/.ray/auth_token (written by any embedded ray.init on this machine)
    # does not decide it: with that file, `ray start --head` turns token auth on while
    # `ray start --address` (auth mode unset there) cannot authenticate, and the workers
    # fail to join (seen on Ray 2.60).
    env["RAY_AUTH_MODE"] = "disabled"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return env


def _sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tail(path, n=4000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError as exc:
        return f"({path}: {exc})"


class LocalCluster:
    """A head and worker nodes, each its own `ray start`, found again by their env token."""

    def __init__(self, root: str):
        self.root = root
        self.token = uuid.uuid4().hex[:16]
        self.gcs_port, self.dash_port = _free_ports(2)
        self.dashboard = f"http://127.0.0.1:{self.dash_port}"

    # --- processes ------------------------------------------------------------------------
    def env(self, node: str) -> dict:
        env = _base_env()
        env[TOKEN_VAR] = f"{self.token}:{node}"
        return env

    def procs(self, node: str | None = None) -> list[psutil.Process]:
        """Live processes of `node` (all nodes if None): those carrying its token, and
        their descendants."""
        found: dict[int, psutil.Process] = {}
        for p in psutil.process_iter():
            try:
                val = p.environ().get(TOKEN_VAR, "")
            except (psutil.Error, OSError):
                continue
            owner, _, name = val.partition(":")
            if owner == self.token and (node is None or name == node):
                found[p.pid] = p
        for p in list(found.values()):
            try:
                for c in p.children(recursive=True):
                    found.setdefault(c.pid, c)
            except psutil.Error:
                pass
        return list(found.values())

    @staticmethod
    def _title(p: psutil.Process) -> str:
        try:
            return " ".join(p.cmdline()) or p.name()
        except psutil.Error:
            return ""

    def kill(self, node: str | None = None, timeout: float = 30) -> list[str]:
        """SIGKILL every process of `node` (all if None), raylets first; returns what was
        killed. Rescans until none is left (a raylet may have forked a worker meanwhile)."""
        killed: list[str] = []
        deadline = time.time() + timeout
        while True:
            procs = self.procs(node)
            if not procs:
                return killed
            if time.time() > deadline:
                raise RuntimeError(f"still alive after {timeout}s: "
                                   f"{[(p.pid, self._title(p)[:80]) for p in procs]}")
            procs.sort(key=lambda p: "raylet" not in self._title(p)[:200])
            for p in procs:
                title = self._title(p)
                try:
                    p.send_signal(signal.SIGKILL)  # psutil refuses a pid that was reused
                    killed.append(f"{p.pid} {title[:100]}")
                except psutil.Error:
                    pass
            psutil.wait_procs(procs, timeout=5)

    # --- lifecycle ----------------------------------------------------------------------
    def ray_start(self, node: str, args: list[str]) -> subprocess.Popen:
        """`ray start` for `node` (it daemonizes and returns); its output goes to a file."""
        temp = os.path.join(self.root, node)
        os.makedirs(temp, exist_ok=True)
        ports = _free_ports(7)
        cmd = [RAY, "start", f"--temp-dir={temp}", "--num-cpus=1", "--disable-usage-stats",
               f"--resources={json.dumps({f'fctest_node_{node}': 1})}",
               f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
               f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
               f"--runtime-env-agent-port={ports[4]}", f"--metrics-export-port={ports[5]}", *args]
        if "--head" in args:
            cmd.append(f"--ray-client-server-port={ports[6]}")
        with open(self.start_log(node), "w") as out:  # never a pipe: the daemons could keep it open
            return subprocess.Popen(cmd, env=self.env(node), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start_log(self, node: str) -> str:
        return os.path.join(self.root, f"ray-start-{node}.log")

    def _wait_started(self, node: str, proc: subprocess.Popen) -> int:
        try:
            return proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"ray start ({node}) hung: {_tail(self.start_log(node), 3000)}") from None

    def start(self) -> None:
        head = self.ray_start("head", ["--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1",
                                       f"--dashboard-port={self.dash_port}", "--include-dashboard=true"])
        rc = self._wait_started("head", head)
        if rc != 0:
            pytest.skip(f"`ray start --head` cannot run here (rc {rc}): {_tail(self.start_log('head'), 1500)}")
        workers = {n: self.ray_start(n, [f"--address=127.0.0.1:{self.gcs_port}"]) for n in WORKER_NODES}
        for node, proc in workers.items():
            rc = self._wait_started(node, proc)
            assert rc == 0, f"ray start (worker {node}) failed: {_tail(self.start_log(node), 3000)}"
        self.wait_nodes(alive={"head", *WORKER_NODES}, timeout=120)

    def nodes(self) -> dict[str, str]:
        """node name -> state (ALIVE / DEAD), from the state API via the dashboard."""
        return {name: state for name, (_, state) in self._node_table().items()}

    def _node_table(self) -> dict[str, tuple[str, str]]:
        """node name -> (node id, state); a node is named by its fctest_node_<name> resource."""
        from ray.util.state import list_nodes

        out: dict[str, tuple[str, str]] = {}
        for n in list_nodes(address=self.dashboard, detail=True, raise_on_missing_output=False):
            for k in n.resources_total or {}:
                if k.startswith("fctest_node_") and (out.get(k[12:], ("", ""))[1] != "ALIVE"):
                    out[k[12:]] = (n.node_id, n.state)
        return out

    def wait_nodes(self, alive=(), dead=(), timeout: float = 120) -> dict:
        deadline, last, err = time.time() + timeout, {}, None
        while time.time() < deadline:
            try:
                last = self.nodes()
                if all(last.get(n) == "ALIVE" for n in alive) and all(last.get(n) == "DEAD" for n in dead):
                    return last
            except Exception as exc:  # noqa: BLE001 - the dashboard may still be starting
                err = exc
            time.sleep(1)
        raise AssertionError(f"nodes not {dict(alive=alive, dead=dead)} after {timeout}s: {last} ({err!r})")

    def actor_nodes(self) -> dict[str, str]:
        """worker node -> 'busy' / 'idle', for the worker nodes hosting a colour actor, from
        the process titles Ray gives its workers (`ray::StageActor` idle,
        `ray::StageActor.process` running a shard): a /proc scan, fast enough to catch a
        run whose shards take a second each on an idle machine."""
        out: dict[str, str] = {}
        for node in WORKER_NODES:
            for p in self.procs(node):
                m = ACTOR_TITLE.match(self._title(p))
                if m:
                    out[node] = "busy" if m.group(1) or out.get(node) == "busy" else "idle"
        return out

    def describe(self) -> str:
        lines = []
        for node in ("head", *WORKER_NODES):
            lines += [f"{node}: {p.pid} {self._title(p)[:90]}" for p in self.procs(node)]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def multinode():
    """Head + two worker nodes (1 CPU each) as separate `ray start` process trees."""
    if not os.access(RAY, os.X_OK):
        pytest.skip(f"no `ray` command beside {PY}")
    root = tempfile.mkdtemp(prefix="fcmn-", dir="/tmp")  # short: Ray's unix socket paths
    cluster = LocalCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.kill(None, timeout=60)
        finally:
            if not os.environ.get("FCTEST_KEEP_RAY_LOGS"):
                shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def reel(tmp_path_factory):
    """A 320-frame gray film of eight shots, one exemplar per shot (3 frames in)."""
    d = tmp_path_factory.mktemp("reel")
    shots = [SynthScene(p, SHOT_FRAMES, pan=pan) for p, pan in SHOTS]
    film = write_film(str(d / "reel.mkv"), shots, WIDTH, HEIGHT, keep_colour=True)
    specs = []
    for k, start in enumerate([0] + film.cuts):
        png = str(d / f"ex{k}.png")
        save_png(png, film.colour[start + 3])
        specs.append(f"{png}@{start + 3}")
    return film, specs


def _colorize_args(film, out, specs) -> list[str]:
    args = [film.path, str(out)]
    for s in specs:
        args += ["-e", s]
    return args + ["--workers", "2", "--model", "flow"]


def test_submitted_job_survives_losing_a_worker_node(multinode, reel, tmp_path):
    from ray.job_submission import JobSubmissionClient

    film, specs = reel
    t0 = time.time()

    # The reference: the same job on an undisturbed embedded cluster (no RAY_ADDRESS), run
    # beside the cluster job to save wall time. It carries the fixture's token too (as node
    # "ref"), so that teardown would find whatever of its embedded Ray outlived it.
    ref_out = tmp_path / "ref" / "reel-colour.mkv"
    ref_out.parent.mkdir()
    ref_log = tmp_path / "ref.log"
    with open(ref_log, "w") as log:
        ref = subprocess.Popen([PY, "-m", "pipeline.cli", "colorize", *_colorize_args(film, ref_out, specs)],
                               cwd=str(REPO), env=multinode.env("ref"), stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out = tmp_path / "cluster" / "reel-colour.mkv"
        out.parent.mkdir()
        run_dir = out.parent / "reel-colour.filmcolor-run"
        seg_dir = run_dir / "segments" / "reel"
        sid = f"fctest-{multinode.token[:8]}"
        sub = subprocess.run([RAY, "job", "submit", "--address", multinode.dashboard, "--no-wait",
                              "--submission-id", sid, "--",
                              PY, str(REPO / "jobs" / "colorize.py"), *_colorize_args(film, out, specs)],
                             env=_base_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=180)
        assert sub.returncode == 0, sub.stdout + sub.stderr
        client = JobSubmissionClient(multinode.dashboard)

        def logs() -> str:
            try:
                return client.get_job_logs(sid)[-6000:]
            except Exception as exc:  # noqa: BLE001
                return f"(no logs: {exc!r})"

        # Wait for the first durable segment, then lose a worker node that hosts a colour actor.
        deadline = time.time() + 300
        while not list(seg_dir.glob("*.mkv")):
            status = client.get_job_status(sid).value
            assert status not in TERMINAL, f"job ended ({status}) before the first segment:\n{logs()}"
            assert time.time() < deadline, f"no segment after 300 s:\n{logs()}"
            time.sleep(0.1)
        t_seg = time.time()
        segments_before = len(list(seg_dir.glob("*.mkv")))
        hosts, t_wait = multinode.actor_nodes(), time.time() + 20
        while not hosts and time.time() < t_wait:  # an actor may be between lives
            time.sleep(0.5)
            hosts = multinode.actor_nodes()
        assert hosts, f"no live colour actor on a worker node:\n{multinode.describe()}"
        victim = next((n for n, s in hosts.items() if s == "busy"), next(iter(hosts)))
        assert segments_before < len(SHOTS), "the run was over before the node could be lost"
        killed = multinode.kill(victim)
        assert any("raylet" in k for k in killed), killed
        assert not multinode.procs(victim)
        print(f"\nfirst segment after {t_seg - t0:.1f}s; {segments_before} of {len(SHOTS)} segments then; actors on "
              f"{hosts}; killed node {victim}: {len(killed)} processes", flush=True)

        # The job must finish by itself on what is left of the cluster.
        deadline = time.time() + 420
        while (status := client.get_job_status(sid).value) not in TERMINAL:
            assert time.time() < deadline, f"job still {status} after 420 s:\n{logs()}"
            time.sleep(1)
        t_done = time.time()
        assert status == "SUCCEEDED", f"job {status}:\n{logs()}"
        print(f"job done {t_done - t_seg:.1f}s after the kill", flush=True)
        nodes = multinode.wait_nodes(alive=[n for n in ("head", *WORKER_NODES) if n != victim],
                                     dead=[victim], timeout=90)
        assert nodes[victim] == "DEAD"

        rc = ref.wait(timeout=max(30, 480 - (time.time() - t0)))
        assert rc == 0, _tail(ref_log)
    finally:
        if ref.poll() is None:  # the test failed early: stop the reference and its Ray
            ref.terminate()
            try:
                ref.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ref.kill()
                ref.wait()
            multinode.kill("ref")

    # Every frame exactly once, with the input's timestamps...
    src, dst = probe(film.path), probe(str(out))
    assert dst.frame_count == src.frame_count == len(SHOTS) * SHOT_FRAMES
    assert dst.frame_pts == src.frame_pts
    assert dst.end_pts == src.end_pts
    # ...and the very bytes an undisturbed run makes.
    assert _sha(out) == _sha(ref_out)

    shards = read_table(str(run_dir), "shards")
    assert len(shards) == len(SHOTS)
    assert all(s["status"] == "done" and s["error"] == "" for s in shards), shards
    spans = sorted((s["start_frame"], s["end_frame"]) for s in shards)
    assert spans[0][0] == 0 and spans[-1][1] == src.frame_count
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no gap, no overlap
    assert sum(s["frames"] for s in shards) == src.frame_count
    films = read_table(str(run_dir), "films")
    assert [f["status"] for f in films] == ["done"] and films[0]["output_sha256"] == _sha(out)
    print(f"test body {time.time() - t0:.1f}s", flush=True)
