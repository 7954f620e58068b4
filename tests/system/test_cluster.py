"""A real multi-node Ray cluster on this machine, started with docker-compose.yml's own commands.

No Docker engine runs here, so the compose file is checked statically, and its `ray start`
commands run as plain processes: a head and a worker node, each with its own ports, sharing one
temp dir of the test's, token authentication on. Jobs go in through Ray's Jobs API, as
`gdsearch submit` sends them, in separate processes with the environment a user would have.
A third node, joined for one test, is SIGKILLed mid-run to show that a lost node loses nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

import gdsearch
from gdsearch.mlp.numerics import fingerprint
from gdsearch.report.document import build
from gdsearch.search import cluster as cluster_module
from tests.conftest import REPO, Cli

yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.ray

COMPOSE = REPO / "docker-compose.yml"
TOKEN_VARIABLES = (
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
)


HEAD_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
"""The head declares a silent node dead after about 3 s instead of Ray's default 15 s, so the
node-loss test stays short; nothing else depends on it."""


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


# --- the compose file, statically -----------------------------------------------------------


def test_compose_has_a_head_and_a_scalable_worker_from_one_image() -> None:
    services = _compose()["services"]
    assert set(services) == {"ray-head", "ray-worker"}
    head, worker = services["ray-head"], services["ray-worker"]
    assert head["image"] == worker["image"] == "gdsearch:latest"
    assert head["build"] == "." and (REPO / "Dockerfile").is_file()
    assert "container_name" not in worker  # a fixed name would forbid --scale
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    for service in (head, worker):
        assert service["shm_size"].startswith("${RAY_SHM_SIZE:-")
        assert service["healthcheck"]["test"][:3] == ["CMD", "ray", "health-check"]
        assert service["volumes"] == ["results:/results"]
        assert service["environment"]["GDSEARCH_RESULTS"] == "/results"
    assert "results" in _compose()["volumes"]


def test_compose_keeps_token_auth_on_and_the_api_on_loopback() -> None:
    services = _compose()["services"]
    for service in services.values():
        env = service["environment"]
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")  # from the environment only
    assert services["ray-head"]["ports"] == [  # the job server and the Ray Client server
        "127.0.0.1:${RAY_DASHBOARD_PORT:-8265}:8265",
        "127.0.0.1:${RAY_CLIENT_PORT:-10001}:10001",
    ]
    assert "--ray-client-server-port=10001" in services["ray-head"]["command"]
    assert "ports" not in services["ray-worker"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "RAY_AUTH_TOKEN" not in dockerfile and "RAY_AUTH_MODE=token" in dockerfile


def test_compose_commands_start_ray_at_the_pinned_version() -> None:
    services = _compose()["services"]
    head, worker = services["ray-head"]["command"], services["ray-worker"]["command"]
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    assert worker[:3] == ["ray", "start", "--address=ray-head:6379"] and "--block" in worker
    assert "--port=6379" in head and "--dashboard-port=8265" in head
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"ray[default]=={ray.__version__}"' in pyproject  # the image installs this one


# --- the same commands as processes on this machine -------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_process(command: list[str], replace: dict[str, str], extra: list[str]) -> list[str]:
    """A compose command with its compose-only values (host names, ${…} defaults) replaced."""
    out = []
    for argument in command:
        flag = argument.split("=", 1)[0]
        out.append(f"{flag}={replace[flag]}" if flag in replace else argument)
    return [*out, *extra]


@dataclass
class RunningCluster:
    dashboard: str
    token: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]
    gcs_address: str
    client_address: str
    temp: str = ""

    def client_server_log(self) -> str:
        """The tail of the newest Ray Client specific-server error log, to say why one failed."""
        logs = sorted(
            Path(self.temp).glob("ray/session_*/logs/ray_client_server_*.err"),
            key=lambda p: p.stat().st_mtime,
        )
        return logs[-1].read_text(errors="replace")[-3000:] if logs else "(no log)"


def _worker_command(gcs_address: str, temp: str) -> list[str]:
    """The compose file's worker node, 1 CPU, joining the head at ``gcs_address``, in the temp
    dir ``temp``, of its own, as on a machine of its own."""
    return _as_process(
        _compose()["services"]["ray-worker"]["command"],
        {"--address": gcs_address, "--num-cpus": "1"},
        [
            "--node-ip-address=127.0.0.1",
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--temp-dir={temp}",
        ],
    )


def _wait_for_nodes(dashboard: str, env: dict[str, str], count: int, deadline: float) -> None:
    probe = (
        "import json, sys; from ray.util.state import list_nodes; "
        f"print(json.dumps(sum(n.state == 'ALIVE' for n in list_nodes(address={dashboard!r}))))"
    )
    while time.monotonic() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
        )
        if done.returncode == 0 and json.loads(done.stdout.strip().splitlines()[-1]) >= count:
            return
        time.sleep(1.0)
    raise TimeoutError(f"fewer than {count} Ray nodes came up")


@contextmanager
def _two_nodes(
    env: dict[str, str],
    temp: str,
    ray: str = "ray",
    worker_env: dict[str, str] | None = None,
) -> Iterator[RunningCluster]:
    """Head + one worker node from the compose commands, 1 CPU each, run by the ``ray``
    executable given, in ``temp``; stopped by their handles. Each node has a temp dir of its
    own, as on machines of their own: two nodes sharing one would build a submission's ``pip``
    environment in the same place at once (Ray installs it in the node's session dir).
    ``worker_env`` is added to the worker node's environment (its Ray workers inherit it)."""
    gcs, dashboard, client = _free_port(), _free_port(), _free_port()
    services = _compose()["services"]
    head = _as_process(
        services["ray-head"]["command"],
        {
            "--port": str(gcs),
            "--dashboard-host": "127.0.0.1",
            "--dashboard-port": str(dashboard),
            "--num-cpus": "1",
            "--ray-client-server-port": str(client),
        },
        [
            f"--temp-dir={temp}/ray",
            "--node-ip-address=127.0.0.1",
            f"--dashboard-agent-listen-port={_free_port()}",
        ],
    )
    worker = _worker_command(f"127.0.0.1:{gcs}", f"{temp}/rayw")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for command in (head, worker):
            log = open(Path(temp) / f"{command[2].lstrip('-').split('=')[0]}.log", "wb")  # noqa: SIM115
            own_env = (
                {**env, **HEAD_HEALTH_CHECKS} if command is head else {**env, **(worker_env or {})}
            )
            processes.append(
                subprocess.Popen(
                    [ray, *command[1:]],
                    env=own_env,
                    stdout=log,
                    stderr=log,
                    cwd=temp,
                    start_new_session=True,
                )
            )
            if command is head:
                time.sleep(3.0)
        address = f"http://127.0.0.1:{dashboard}"
        _wait_for_nodes(address, env, 2, time.monotonic() + 120)
        yield RunningCluster(
            address,
            env["RAY_AUTH_TOKEN"],
            env,
            processes,
            f"127.0.0.1:{gcs}",
            f"ray://127.0.0.1:{client}",
            temp,
        )
    finally:
        for process in reversed(processes):  # only what this started, by its handle
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _token_env(home: str) -> dict[str, str]:
    """This environment with a fresh cluster token and no other token to be found."""
    env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARIABLES}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), HOME=home)
    return env


@pytest.fixture(scope="module")
def cluster() -> Iterator[RunningCluster]:
    """The two-node cluster, from this environment (which has gdsearch installed)."""
    temp = tempfile.mkdtemp(prefix="gdsc-", dir="/tmp")
    try:
        with _two_nodes(_token_env(temp), temp) as running:  # no ~/.ray token leaks in
            yield running
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def test_submitted_job_runs_on_both_nodes_and_equals_a_local_run(
    cli: Cli, cluster: RunningCluster, small_job: Path, tmp_path: Path, local_ray: None
) -> None:
    # Units long enough (about half a second each) that the head cannot finish them all
    # before the worker node's first worker process is up, even on a busy machine.
    small_job.write_text(small_job.read_text().replace("epochs = 60", "epochs = 20000"))
    shared = tmp_path / "shared-results"
    submitted = cli.run(
        [
            "submit",
            str(small_job),
            "--address",
            cluster.dashboard,
            "--results-dir",
            str(shared),
            "--submission-id",
            f"gdsearch-test-{secrets.token_hex(4)}",
            "--metadata-json",
            '{"owner": "tests"}',
            "--entrypoint-num-cpus",
            "0",
        ],
        cluster.env,
        timeout=300,
        inherit=False,
    )
    # By default submit waits, following the log, and exits with the job's state.
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.splitlines()[0].strip()
    assert submission_id.startswith("gdsearch-test-")
    assert "small: 32 trials" in submitted.stdout and "SUCCEEDED" in submitted.stderr

    followed = cli.run(
        ["logs", submission_id, "--follow", "--address", cluster.dashboard],
        cluster.env,
        timeout=300,
        inherit=False,
    )
    assert followed.returncode == 0, followed.stderr
    status = cli.run(
        ["status", submission_id, "--address", cluster.dashboard], cluster.env, inherit=False
    )
    assert status.stdout.startswith(f"{submission_id}: SUCCEEDED"), followed.stdout[-2000:]
    assert status.returncode == 0  # the exit code says the state
    listed = cli.run(["jobs", "--address", cluster.dashboard], cluster.env, inherit=False)
    assert submission_id in listed.stdout and "small" in listed.stdout
    as_json = cli.run(
        ["status", submission_id, "--json", "--address", cluster.dashboard],
        cluster.env,
        inherit=False,
    )
    assert json.loads(as_json.stdout)["status"] == "SUCCEEDED" and as_json.returncode == 0
    assert json.loads(as_json.stdout)["entrypoint"] == cluster_module.entrypoint(
        small_job.name, str(shared)
    )  # the command deploy/kuberay/rayjob.yaml runs
    listed_json = json.loads(
        cli.run(
            ["jobs", "--json", "--address", cluster.dashboard], cluster.env, inherit=False
        ).stdout
    )
    assert submission_id in {row["submission_id"] for row in listed_json}

    # The nodes hold gdsearch's pinned dependencies (they run from this environment, as the
    # compose image's nodes do): the probe says so, and only the package goes with the job.
    assert "--ship auto: every node (2) has gdsearch's pinned dependencies" in submitted.stderr
    shipped = _runtime_env(cluster, submission_id)
    assert shipped["py_modules"][0].startswith("gcs://")  # uploaded from the package here
    assert "pip" not in shipped  # no environment for each node to build
    assert not any(row["entrypoint"].startswith("python -c") for row in listed_json)  # deleted

    remote = gdsearch.load_results(shared / "small")
    assert len(set(remote.trials["node"])) == 2  # trained on the head and on the worker node
    assert len(remote.manifest["cluster"]["nodes"]) == 2
    local = gdsearch.load_results(
        gdsearch.run_search(small_job, tmp_path, show_progress=False).path
    )
    assert remote.history.equals(local.history)
    columns = ["trial_id", "lr", "init", "hidden", "seed", "status", "final_sse", "min_sse"]
    assert remote.trials[columns].equals(local.trials[columns])


def _runtime_env(cluster: RunningCluster, submission_id: str) -> dict[str, Any]:
    """The runtime environment the cluster recorded for a submission, as Ray's client reads it."""
    probe = (
        "import json; from ray.job_submission import JobSubmissionClient; "
        f"info = JobSubmissionClient({cluster.dashboard!r}).get_job_info({submission_id!r}); "
        "print(json.dumps(info.runtime_env))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    env: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return env


def test_a_client_on_the_host_runs_a_job_through_the_ray_client_port(
    cli: Cli, cluster: RunningCluster, small_job: Path, tmp_path: Path, local_ray: None
) -> None:
    """What the compose file publishes on loopback: `gdsearch run --address ray://HOST:10001`
    drives the cluster from outside it, results written where the client runs."""
    command = [
        "run",
        str(small_job),
        "--address",
        cluster.client_address,
        "--results-dir",
        str(tmp_path / "client"),
        "--no-progress",
        "--json",
    ]
    ran = cli.run(command, cluster.env, timeout=300, inherit=False)
    started = ("Starting Ray client server failed", "Initialization failure from server")
    if ran.returncode and any(said in ran.stderr for said in started):
        # Ray's per-client server can fail to start on a loaded machine (its proxy says so, or
        # trips over the exited process while waiting for it): once more, and keep Ray's own
        # reason for the record.
        first = cluster.client_server_log()
        ran = cli.run(command, cluster.env, timeout=300, inherit=False)
        assert ran.returncode == 0, f"{ran.stderr[-2000:]}\nfirst failure:\n{first}"
    assert ran.returncode == 0, ran.stderr[-3000:] + cluster.client_server_log()
    assert json.loads(ran.stdout)["ran"] == 32
    remote = gdsearch.load_results(tmp_path / "client" / "small")
    assert len(remote.manifest["cluster"]["nodes"]) == 2
    local = gdsearch.load_results(
        gdsearch.run_search(small_job, tmp_path / "local", show_progress=False).path
    )
    assert remote.history.equals(local.history)


@pytest.mark.slow
def test_a_node_without_numpys_simd_computes_the_same_portable_histories(
    cli: Cli, small_job: Path, tmp_path: Path, local_ray: None
) -> None:
    """A cluster of unlike machines: the worker node runs with every optional SIMD target of
    numpy turned off (NPY_DISABLE_CPU_FEATURES), the head with all this CPU has. The portable
    path's histories equal a local run's bit for bit; the BLAS path's trials record two
    fingerprints, and the report says that they mix."""
    features = fingerprint("blas")["simd"]
    if not features:
        pytest.skip("this CPU offers numpy no SIMD targets above its baseline")
    small_job.write_text(small_job.read_text().replace("epochs = 60", "epochs = 5000"))
    blas_job = tmp_path / "small_blas.toml"
    blas_job.write_text(
        small_job.read_text()
        .replace('name = "small"', 'name = "small-blas"')
        .replace("[train]", '[train]\nnumerics = "blas"')
    )
    temp = tempfile.mkdtemp(prefix="gdsn-", dir="/tmp")
    disabled = {"NPY_DISABLE_CPU_FEATURES": " ".join(features)}
    try:
        with _two_nodes(_token_env(temp), temp, worker_env=disabled) as running:
            for job in (small_job, blas_job):
                ran = cli.run(
                    [
                        "run",
                        str(job),
                        "--address",
                        running.client_address,
                        "--results-dir",
                        str(tmp_path / "cluster"),
                        "--no-progress",
                    ],
                    running.env,
                    timeout=900,
                    inherit=False,
                )
                assert ran.returncode == 0, ran.stderr[-3000:]
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    portable = gdsearch.load_results(tmp_path / "cluster" / "small")
    blas = gdsearch.load_results(tmp_path / "cluster" / "small-blas")
    for results in (portable, blas):
        assert len(set(results.trials["node"])) == 2  # trained on both nodes
    assert set(portable.trials["numerics"]) == {"portable; version 1"}
    assert len(set(blas.trials["numerics"])) == 2  # the nodes differ, and the record shows it
    local = gdsearch.load_results(
        gdsearch.run_search(small_job, tmp_path / "local", show_progress=False).path
    )
    assert portable.history.equals(local.history)
    report = build(blas, tmp_path / "blas.md", fmt="md").read_text()
    assert "this result set mixes numerics" in report


def test_a_submission_without_the_token_is_refused(
    cli: Cli, cluster: RunningCluster, small_job: Path
) -> None:
    env = {k: v for k, v in cluster.env.items() if k not in TOKEN_VARIABLES}
    env["HOME"] = tempfile.mkdtemp(prefix="gdsearch-empty-home-")  # no ~/.ray/auth_token either
    refused = cli.run(
        [
            "submit",
            str(small_job),
            "--address",
            cluster.dashboard,
            "--results-dir",
            "/tmp/never-written",
        ],
        env,
        inherit=False,
    )
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "refused" in refused.stderr and "RAY_AUTH_TOKEN" in refused.stderr
    wrong = cli.run(
        ["jobs", "--address", cluster.dashboard],
        {**env, "RAY_AUTH_TOKEN": "0" * 64},
        inherit=False,
    )
    assert wrong.returncode == 2 and "refused" in wrong.stderr
    accepted = cli.run(["jobs", "--address", cluster.dashboard], cluster.env, inherit=False)
    assert accepted.returncode == 0, accepted.stderr


def test_unknown_id_and_unreachable_address_are_one_line_errors(
    cli: Cli, cluster: RunningCluster
) -> None:
    unknown = cli.run(
        ["status", "raysubmit_nosuchjob", "--address", cluster.dashboard],
        cluster.env,
        inherit=False,
    )
    assert unknown.returncode == 2 and "raysubmit_nosuchjob" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    nowhere = cli.run(
        ["jobs", "--address", f"http://127.0.0.1:{_free_port()}"], cluster.env, inherit=False
    )
    assert nowhere.returncode == 2 and "no Ray job server answers" in nowhere.stderr
    assert len(nowhere.stderr.strip().splitlines()) == 1


def test_stop_ends_a_running_submission(cli: Cli, cluster: RunningCluster, tmp_path: Path) -> None:
    job = tmp_path / "long.toml"
    job.write_text(
        (REPO / "jobs" / "seed_sine.toml")
        .read_text()
        .replace("epochs = 20000", "epochs = 1000000")
    )
    submitted = cli.run(
        [
            "submit",
            str(job),
            "--address",
            cluster.dashboard,
            "--results-dir",
            str(tmp_path / "r"),
            "--no-wait",
        ],
        cluster.env,
        inherit=False,
    )
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.strip()
    stopped = cli.run(
        ["stop", submission_id, "--address", cluster.dashboard], cluster.env, inherit=False
    )
    assert stopped.returncode == 0 and stopped.stdout.startswith(f"{submission_id}: stopping")
    deadline = time.monotonic() + 60
    state, code = "", -1
    while time.monotonic() < deadline:
        shown = cli.run(
            ["status", submission_id, "--address", cluster.dashboard], cluster.env, inherit=False
        )
        state, code = shown.stdout, shown.returncode
        if "STOPPED" in state:
            break
        assert code == 4  # pending or running, until it stops
        time.sleep(1.0)
    assert f"{submission_id}: STOPPED" in state and code == 3


# --- a node lost mid-run ----------------------------------------------------------------------

NODE_LOSS_JOB = """
[job]
name = "node-loss"
seed = 11

[data]
dataset = "moons"
n_samples = 40

[train]
epochs = 6000

[search]
lr = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
hidden = [[4], [6]]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
"""
NODE_MARKER = "GDSEARCH_TEST_NODE"  # set on the extra node only: its processes carry it


def _cluster_state(dashboard: str, env: dict[str, str]) -> tuple[set[str], set[tuple[Any, ...]]]:
    """The alive nodes' ids, and (task_id, node_id, state, attempt) of every unit task so far."""
    probe = (
        "import json; from ray.util.state import list_nodes, list_tasks; "
        f"nodes = list_nodes(address={dashboard!r}); "
        f"tasks = list_tasks(address={dashboard!r}, detail=True, limit=10000, "
        "filters=[('name', '=', 'unit_task')]); "
        "print(json.dumps([[n.node_id for n in nodes if n.state == 'ALIVE'], "
        "[(t.task_id, t.node_id, t.state, t.attempt_number) for t in tasks]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    nodes, tasks = json.loads(done.stdout.strip().splitlines()[-1])
    return set(nodes), {tuple(task) for task in tasks}


def _training_on(marker: str, variable: str = NODE_MARKER) -> bool:
    """Whether a worker of the nodes that carry ``variable=marker`` is training a unit now."""
    from tests.processes import processes_of

    for pid in processes_of(marker, variable):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read().startswith(b"ray::unit_task"):
                    return True
        except OSError:
            continue
    return False


def test_a_worker_node_lost_mid_run_the_run_completes_on_the_rest(
    cluster: RunningCluster, tmp_path: Path, local_ray: None
) -> None:
    """A third node joins and is SIGKILLed (its process group, by the Popen handle, then every
    process that carries its marker) while it trains a unit; Ray runs that unit again elsewhere."""
    from tests.processes import Driver, kill_leftovers, processes_of

    job = tmp_path / "node-loss.toml"
    job.write_text(NODE_LOSS_JOB)
    before, attempts_before = _cluster_state(cluster.dashboard, cluster.env)
    marker = tempfile.mkdtemp(prefix="gdsn-", dir="/tmp")
    with open(Path(marker) / "node.log", "wb") as log:
        node = subprocess.Popen(
            _worker_command(cluster.gcs_address, f"{marker}/ray"),
            env={**cluster.env, NODE_MARKER: marker},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    results = tmp_path / "results"
    driver = None
    try:
        deadline = time.monotonic() + 120
        while not (new := _cluster_state(cluster.dashboard, cluster.env)[0] - before):
            assert time.monotonic() < deadline, "the third node did not come up"
            time.sleep(0.5)
        [lost] = new
        driver = Driver(
            [
                "run",
                str(job),
                "--address",
                cluster.gcs_address,
                "--results-dir",
                str(results),
                "--no-progress",
            ],
            base_env=cluster.env,
        )
        deadline = time.monotonic() + 240
        while not _training_on(marker):
            assert driver.process.poll() is None, driver.stderr()
            assert time.monotonic() < deadline, "the new node never trained a unit"
            time.sleep(0.01)
        os.killpg(node.pid, signal.SIGKILL)  # the node's raylet and agents, by the handle
        node.wait(timeout=30)
        kill_leftovers(marker, NODE_MARKER)  # its workers, in process groups of their own
        assert processes_of(marker, NODE_MARKER) == []
        assert driver.wait(timeout=300) == 0, driver.stderr()[-3000:]
        assert "on 3 CPUs" in driver.stderr()  # the plan counted the lost node
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
        kill_leftovers(marker, NODE_MARKER)
        if driver is not None:
            driver.kill()
            driver.remove()
        shutil.rmtree(marker, ignore_errors=True)

    attempts = _cluster_state(cluster.dashboard, cluster.env)[1] - attempts_before
    failed = {
        task for task, node_id, state, _ in attempts if node_id == lost and state == "FAILED"
    }
    retried = {task for task, node_id, state, n in attempts if node_id != lost and n > 0}
    assert failed and failed <= retried, attempts  # each unit lost with the node ran again
    remote = gdsearch.load_results(results / "node-loss")
    local = gdsearch.load_results(gdsearch.run_search(job, tmp_path, show_progress=False).path)
    assert len(remote.trials) == 96 and remote.trials["trial_id"].is_unique
    assert not remote.history.duplicated(["trial_id", "epoch"]).any()
    assert remote.history.equals(local.history)
    varying = ["node", "wall_s"]
    assert remote.trials.drop(columns=varying).equals(local.trials.drop(columns=varying))


INTERRUPTED_JOB = """
[job]
name = "interrupted"
seed = 3

[data]
dataset = "moons"
n_samples = 200

[train]
epochs = 400000

[search]
lr = [0.01, 0.02]
hidden = [[64, 64]]
seed = [0, 1]
"""
"""Four trials of a minute or more each: a unit still training 20 s after the interrupt is one
the run left behind."""


def test_an_interrupted_run_leaves_no_unit_training_on_the_cluster(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    """Ctrl-C on `gdsearch run --address` ends it with 130 and its units stop training on the
    cluster's nodes: leaving Ray ends the job's tasks, where each would train for minutes."""
    from tests.processes import sigint_default

    job = tmp_path / "long.toml"
    job.write_text(INTERRUPTED_JOB)
    results = tmp_path / "results"
    run = [sys.executable, "-m", "gdsearch.cli", "run", str(job), "--no-progress"]
    driver = subprocess.Popen(
        [*run, "--address", cluster.gcs_address, "--results-dir", str(results)],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_default,
    )
    try:
        deadline = time.monotonic() + 120
        while not _training_on(cluster.temp, "HOME"):  # the nodes' HOME is the cluster's dir
            assert driver.poll() is None, driver.communicate()[1].decode(errors="replace")
            assert time.monotonic() < deadline, "no unit started training"
            time.sleep(0.05)
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=60)
        assert driver.returncode == 130, err.decode(errors="replace")[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    deadline = time.monotonic() + 20
    while _training_on(cluster.temp, "HOME"):
        assert time.monotonic() < deadline, "a unit still trains after the run was interrupted"
        time.sleep(0.2)
    manifest = json.loads((results / "interrupted" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"


# --- a stock Ray cluster: nodes with Ray and Python, and nothing of gdsearch's ------------------


@pytest.mark.slow
def test_a_stock_ray_cluster_runs_a_submitted_job_with_gdsearch_shipped_in_its_runtime_env(
    cli: Cli, small_job: Path, tmp_path: Path, local_ray: None
) -> None:
    """Both nodes run from a fresh virtual environment with only `ray[default]` installed (no
    gdsearch, no numpy); `gdsearch submit` ships the package and its pinned dependencies, and
    the job's histories equal a local run's bit for bit."""
    temp = tempfile.mkdtemp(prefix="gdss-", dir="/tmp")
    try:
        venv = Path(temp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, f"ray[default]=={ray.__version__}"], check=True, timeout=900)
        bare = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import gdsearch"],
            cwd=temp,
            capture_output=True,
            text=True,
        )
        assert bare.returncode != 0 and "No module named 'gdsearch'" in bare.stderr
        env = _token_env(temp)
        env.pop("PYTHONPATH", None)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))  # HOME moves
        with _two_nodes(env, temp, ray=str(venv / "bin" / "ray")) as stock:
            client_env = {**env, "PATH": os.environ.get("PATH", "")}  # gdsearch's side
            submitted = cli.run(
                [
                    "submit",
                    str(small_job),
                    "--address",
                    stock.dashboard,
                    "--results-dir",
                    str(tmp_path / "shared"),
                ],
                client_env,
                timeout=1200,
                inherit=False,
            )
            assert submitted.returncode == 0, submitted.stdout[-5000:] + submitted.stderr
            assert "has numba none, not" in submitted.stderr  # the probe found no numba
            assert "(as --ship all)" in submitted.stderr
            submission_id = submitted.stdout.splitlines()[0].strip()
            shipped = _runtime_env(stock, submission_id)
            packages = shipped["pip"]["packages"]  # Ray keeps a pip list in this form
            assert set(cluster_module.DEPENDENCIES) <= {p.split("==")[0] for p in packages}
            assert shipped["py_modules"]
        remote = gdsearch.load_results(tmp_path / "shared" / "small")
        assert len(remote.manifest["cluster"]["nodes"]) == 2
        local = gdsearch.load_results(
            gdsearch.run_search(small_job, tmp_path / "local", show_progress=False).path
        )
        assert remote.history.equals(local.history)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
