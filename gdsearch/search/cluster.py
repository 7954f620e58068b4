"""Submit search jobs to a Ray cluster through Ray's Jobs API, and watch, stop and list them.

gdsearch has no cluster of its own: ``submit`` hands Ray's job server the job file (and its data
file) as the job's working directory, with ``python -m gdsearch run`` as the entrypoint; the
driver then runs on the cluster and writes to the results location the submission names.

A stock Ray cluster (nodes with Ray and Python, nothing of ours) runs it: the submission ships
gdsearch itself in Ray's runtime environment, the package as a ``py_modules`` entry and, where
the nodes lack them, its dependencies as a ``pip`` list pinned to the versions installed where it
is submitted from (the same numpy and the same code on every node). Building that pip
environment takes each node a minute or more, so by default (``ship="auto"``) a short probe job
first asks every live node which versions it has (:func:`probe`): where all of them hold the
pinned versions already (an image built from this project, as the compose file's), only the
package is sent (as ``ship="code"``), else the package and its dependencies (``ship="all"``);
the log says which and why. ``ship="all"``, ``"code"`` and ``"none"`` (the nodes' image has
gdsearch installed) choose without a probe. The cluster must run the Ray this gdsearch pins
(:data:`RAY_NEEDED`), which is checked before anything is sent.

The Jobs API answers at the dashboard's address (``http://HEAD:8265``). With Ray's token
authentication on, the client sends the token Ray finds in ``RAY_AUTH_TOKEN``, the file named by
``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdsearch.errors import InputError, one_line
from gdsearch.job.spec import JobSpec, load_job
from gdsearch.results.files import is_uri

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

log = logging.getLogger("gdsearch")

ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
SHIP = ("auto", "all", "code", "none")
"""What a submission sends of gdsearch: the package, and its pinned dependencies where a probe
finds a node without them; the package and its pinned dependencies; the package only; or
nothing (the cluster has it installed)."""
PROBE_TIMEOUT_S = 120.0
"""How long ``ship="auto"`` waits for its probe job before it ships everything."""
PROBE_MARK = "gdsearch-probe: "
PROBE = """
import json, sys
from importlib.metadata import PackageNotFoundError, version

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

def installed(names):
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found

names = json.loads(sys.argv[1])
ray.init(logging_level="ERROR")
ask = ray.remote(num_cpus=0)(installed)
nodes = [node for node in ray.nodes() if node["Alive"]]
answers = ray.get([
    ask.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
    .remote(names)
    for node in nodes
])
where = [f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})" for node in nodes]
print("gdsearch-probe: " + json.dumps(list(zip(where, answers))), flush=True)
"""
"""The probe job's program: the versions of the named packages on every live node."""
DEPENDENCIES = (
    "filelock",
    "matplotlib",
    "numba",
    "numpy",
    "pandas",
    "pyarrow",
    "threadpoolctl",
    "tomli-w",
    "tqdm",
)
"""gdsearch's dependencies but Ray (the cluster runs its own), as pyproject.toml lists them."""
RAY_NEEDED = "2.60.0"
"""The Ray a cluster must run: the one pyproject.toml pins."""


def entrypoint(job_file: str, results_dir: str) -> str:
    """The command the cluster's driver runs: the same wherever gdsearch comes from (shipped in
    the runtime environment or installed in the image), and the one the recipes in deploy/ use."""
    return " ".join(
        [
            "python",
            "-m",
            "gdsearch",
            "run",
            shlex.quote(job_file),
            "--results-dir",
            shlex.quote(results_dir),
            "--no-progress",
        ]
    )


def installed_here() -> dict[str, str]:
    """The versions of gdsearch's dependencies (but Ray) installed where it runs."""
    from importlib.metadata import version

    return {name: version(name) for name in DEPENDENCIES}


def pinned_requirements() -> list[str]:
    """gdsearch's dependencies pinned to the versions installed here, as pip requirements."""
    from importlib.metadata import PackageNotFoundError, version

    pins = [f"{name}=={version(name)}" for name in DEPENDENCIES]
    try:
        pins.append(f'tomli=={version("tomli")}; python_version < "3.11"')
    except PackageNotFoundError:
        pins.append('tomli>=2.0; python_version < "3.11"')
    return pins


def shipped_env(ship: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The runtime environment a submission sends: ``extra`` (the user's) with gdsearch added as
    ``ship`` says. A user's ``py_modules`` or ``pip`` list is kept alongside ours; an
    environment of another kind (conda, uv, an image) is the user's to fill, with ship "none"."""
    if ship not in SHIP or ship == "auto":
        raise InputError(f"--ship: one of {', '.join(SHIP[1:])}, but got {ship!r}")
    env = dict(extra)
    if ship == "none":
        return env
    if ship == "all":
        foreign = sorted(set(env) & {"uv", "conda", "image_uri", "container"})
        if foreign:
            raise InputError(
                f"--runtime-env-json: {foreign[0]} is set, which decides what the nodes run; "
                "install gdsearch's dependencies there and pass --ship code (or none)"
            )
        pip = env.get("pip", [])
        if isinstance(pip, dict):
            env["pip"] = {**pip, "packages": [*pinned_requirements(), *pip.get("packages", [])]}
        elif isinstance(pip, list):
            env["pip"] = [*pinned_requirements(), *pip]
        else:
            raise InputError(f"--runtime-env-json: pip must be a list or an object, got {pip!r}")
    package = str(Path(__file__).resolve().parents[1])
    env["py_modules"] = [package, *env.get("py_modules", [])]
    return env


def probe(client: JobSubmissionClient, timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Ask every live node of the cluster which versions of gdsearch's dependencies it has, by
    a short job (:data:`PROBE`, no runtime environment, no CPU reserved) that is deleted after.

    Returns:
        ``{"address (node id)": {package: version or None}}``, or ``{}`` if the probe did not
        answer within ``timeout`` seconds (it is then stopped).
    """
    from ray.job_submission import JobStatus

    command = f"python -c {shlex.quote(PROBE)} {shlex.quote(json.dumps(list(DEPENDENCIES)))}"
    with _reasons("probe"):
        probe_id: str = client.submit_job(
            entrypoint=command,
            entrypoint_num_cpus=0,
            metadata={"gdsearch_probe": "package versions"},
        )
        deadline = time.monotonic() + timeout
        status = client.get_job_status(probe_id)
        while not status.is_terminal() and time.monotonic() < deadline:
            time.sleep(0.25)
            status = client.get_job_status(probe_id)
        if not status.is_terminal():
            client.stop_job(probe_id)
            return {}
        lines = client.get_job_logs(probe_id).splitlines()
        client.delete_job(probe_id)
    answer = [line for line in lines if line.startswith(PROBE_MARK)]
    if status != JobStatus.SUCCEEDED or not answer:
        return {}
    return {str(node): dict(found) for node, found in json.loads(answer[-1][len(PROBE_MARK) :])}


def choose_ship(nodes: dict[str, dict[str, Any]], here: dict[str, str]) -> tuple[str, str]:
    """What ``ship="auto"`` sends, and why, from the probe's answer (:func:`probe`): the
    package only where every node has every dependency at the version installed here."""
    if not nodes:
        return "all", "the cluster's nodes did not say which packages they have"
    for node, found in sorted(nodes.items()):
        for name, wanted in here.items():
            if found.get(name) != wanted:
                has = found.get(name) or "none"
                return "all", f"node {node} has {name} {has}, not {wanted}"
    return "code", f"every node ({len(nodes)}) has gdsearch's pinned dependencies"


def check_ray_version(client: JobSubmissionClient, target: str) -> None:
    """Refuse, in one line, a cluster whose Ray is not the one gdsearch pins."""
    running = getattr(client, "_server_ray_version", None)  # read by the client on connecting
    if running and running != RAY_NEEDED:
        raise InputError(
            f"--address {target!r}: the cluster runs Ray {running}, but gdsearch needs Ray "
            f"{RAY_NEEDED} on every node (and Python 3.10 or later)"
        )


def resolve_address(address: str | None) -> str:
    """The Jobs API address: ``--address``, else RAY_API_SERVER_ADDRESS, else RAY_ADDRESS where
    it is a job server's URL (``http://…``), as Ray's job tools use it.

    RAY_ADDRESS also names a cluster to join (HEAD:6379, for ``gdsearch run``); given that
    meaning here, it is refused in one line rather than tried as a URL.
    """
    for candidate in (address, os.environ.get("RAY_API_SERVER_ADDRESS")):
        if candidate:
            return candidate if "://" in candidate else f"http://{candidate}"
    joining = os.environ.get("RAY_ADDRESS")
    if joining and joining.startswith(("http://", "https://")):
        return joining
    if joining:
        raise InputError(
            f"RAY_ADDRESS {joining!r}: a cluster to join (for `gdsearch run`), not a job "
            "server; give the job server's URL with --address or RAY_API_SERVER_ADDRESS, "
            "e.g. http://127.0.0.1:8265"
        )
    raise InputError(
        "--address: missing; give the cluster's job server, e.g. http://127.0.0.1:8265 "
        "(or set RAY_API_SERVER_ADDRESS)"
    )


def connect(address: str | None) -> JobSubmissionClient:
    """A Jobs API client for the cluster, or an InputError saying why there is none."""
    from ray.job_submission import JobSubmissionClient

    target = resolve_address(address)
    with _reasons(f"--address {target!r}"):
        return JobSubmissionClient(target)
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def _reasons(subject: str) -> Iterator[None]:
    """Turn the Jobs client's failures into one-line input errors."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
        raise InputError(
            f"{subject}: the cluster refused the request ({first}); set RAY_AUTH_TOKEN or "
            "RAY_AUTH_TOKEN_PATH to the cluster's token"
        ) from None
    except ConnectionError as exc:
        raise InputError(f"{subject}: no Ray job server answers ({one_line(exc)})") from None
    except RuntimeError as exc:  # the client's wording for 404s and other HTTP failures
        raise InputError(f"{subject}: {one_line(exc)}") from None


def _working_dir(spec: JobSpec, folder: Path) -> str:
    """Copy the job file, and its data file if it has one, keeping their relative places.

    Returns the job file's path inside ``folder``.
    """
    job = Path(spec.path).resolve()
    files = [job]
    if spec.dataset == "file":
        files.append(Path(spec.data_kwargs()["path"]))
    base = Path(os.path.commonpath([f.parent for f in files]))
    for source in files:
        target = folder / source.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return job.relative_to(base).as_posix()


def submit(
    job_path: str,
    address: str | None,
    results_dir: str,
    *,
    submission_id: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    entrypoint_num_cpus: float | None = None,
    ship: str = "auto",
) -> str:
    """Submit a job file to the cluster; returns the submission id.

    Args:
        job_path: the job file; it is checked here first.
        address: the cluster's Jobs API (dashboard) address.
        results_dir: where the cluster's driver writes: an absolute path on a volume the
            cluster shares, or a filesystem URI such as ``s3://bucket/prefix``.
        submission_id: the id to give the submission (Ray makes one by default).
        runtime_env: more of Ray's runtime environment (``env_vars``, ``pip``, …); its
            ``working_dir`` is the job and its data, so it may not set one.
        metadata: more metadata to record with the submission.
        entrypoint_num_cpus: CPUs reserved for the driver (Ray's default: none).
        ship: what to send of gdsearch (:data:`SHIP`): "auto" probes the nodes and sends
            the pinned dependencies only where one lacks them; "all" sends them always.
    """
    extra_env = dict(runtime_env or {})
    if "working_dir" in extra_env:
        raise InputError(
            "--runtime-env-json: working_dir is the job and its data file, which submit "
            f"sends itself, but got working_dir = {extra_env['working_dir']!r}"
        )
    spec = load_job(job_path)
    spec.load_data()  # a bad data file is refused here, not on the cluster
    if not (is_uri(results_dir) or Path(results_dir).is_absolute()):
        raise InputError(
            f"--results-dir: the cluster needs an absolute path on a shared volume or a URI "
            f"such as s3://bucket/prefix, but got {results_dir!r}"
        )
    if ship not in SHIP:
        raise InputError(f"--ship: one of {', '.join(SHIP)}, but got {ship!r}")
    if ship != "auto":
        shipped_env(ship, extra_env)  # a runtime env that cannot be shipped so: before connecting
    client = connect(address)
    check_ray_version(client, resolve_address(address))
    foreign = sorted(set(extra_env) & {"uv", "conda", "image_uri", "container"})
    if ship == "auto" and foreign:
        ship, why = "code", f"the runtime env sets {foreign[0]}, which decides what nodes run"
        log.info("--ship auto: %s; sending the package only (as --ship code)", why)
    elif ship == "auto":
        ship, why = choose_ship(probe(client), installed_here())
        what = "the package only" if ship == "code" else "the package and its pinned dependencies"
        log.info("--ship auto: %s; sending %s (as --ship %s)", why, what, ship)
    env = shipped_env(ship, extra_env)
    with tempfile.TemporaryDirectory(prefix="gdsearch-submit-") as folder:
        job_file = _working_dir(spec, Path(folder))
        with _reasons("submit"):
            given: str = client.submit_job(
                entrypoint=entrypoint(job_file, results_dir),
                submission_id=submission_id,
                runtime_env={**env, "working_dir": folder},
                metadata={
                    **(metadata or {}),
                    "gdsearch_job": spec.name,
                    "results": results_dir,
                    "gdsearch_ship": ship,
                },
                entrypoint_num_cpus=entrypoint_num_cpus,
            )
    return given


def status(address: str | None, submission_id: str) -> dict[str, Any]:
    """The submission's status, message and times."""
    client = connect(address)
    with _reasons(f"submission {submission_id!r}"):
        info = client.get_job_info(submission_id)
    return {
        "submission_id": submission_id,
        "status": str(info.status.value if hasattr(info.status, "value") else info.status),
        "message": info.message or "",
        "entrypoint": info.entrypoint,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "metadata": info.metadata or {},
    }


def logs(address: str | None, submission_id: str) -> str:
    """The submission's driver log so far."""
    client = connect(address)
    with _reasons(f"submission {submission_id!r}"):
        text: str = client.get_job_logs(submission_id)
    return text


def follow_logs(address: str | None, submission_id: str, write: Callable[[str], Any]) -> None:
    """Stream the submission's driver log to ``write`` until the job ends."""
    client = connect(address)

    async def tail() -> None:
        async for chunk in client.tail_job_logs(submission_id):
            write(chunk)

    with _reasons(f"submission {submission_id!r}"):
        client.get_job_status(submission_id)  # an unknown id fails here, with its message
        asyncio.run(tail())


def stop(address: str | None, submission_id: str) -> bool:
    """Ask the cluster to stop a submission; False if it had already ended."""
    client = connect(address)
    with _reasons(f"submission {submission_id!r}"):
        stopped: bool = client.stop_job(submission_id)
    return stopped


def jobs(address: str | None) -> list[dict[str, Any]]:
    """Every submission the cluster knows, newest first."""
    client = connect(address)
    with _reasons("jobs"):
        found = client.list_jobs()
    rows = [
        {
            "submission_id": job.submission_id or "",
            "status": str(job.status.value if hasattr(job.status, "value") else job.status),
            "job": (job.metadata or {}).get("gdsearch_job", ""),
            "start_time": job.start_time or 0,
            "entrypoint": job.entrypoint,
        }
        for job in found
    ]
    return sorted(rows, key=lambda row: row["start_time"], reverse=True)
