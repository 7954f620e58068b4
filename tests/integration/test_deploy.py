"""What gdsearch sends to a Ray cluster, and the recipes in deploy/ for clusters it does not start:
a KubeRay RayJob and a `ray up` cluster, parsed and held to the command the two-node test runs."""

from __future__ import annotations

import http.server
import json
import shlex
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from gdsearch.errors import InputError
from gdsearch.job.spec import load_job
from gdsearch.search import cluster
from tests.conftest import REPO, Cli

yaml = pytest.importorskip("yaml")

RAYJOB = REPO / "deploy" / "kuberay" / "rayjob.yaml"
RAY_UP = REPO / "deploy" / "ray-up" / "cluster.yaml"


def _pyproject_dependencies() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def _name(requirement: str) -> str:
    for stop in "=<>;[ ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip()


# --- what a submission ships -----------------------------------------------------------------


def test_the_shipped_dependencies_are_pyprojects_but_ray_pinned_as_installed() -> None:
    declared = {_name(r) for r in _pyproject_dependencies()} - {"ray", "tomli"}
    assert set(cluster.DEPENDENCIES) == declared
    pins = cluster.pinned_requirements()
    from importlib.metadata import version

    for name in cluster.DEPENDENCIES:
        assert f"{name}=={version(name)}" in pins
    assert any(pin.startswith("tomli") and 'python_version < "3.11"' in pin for pin in pins)
    assert f'"ray[default]=={cluster.RAY_NEEDED}"' in (REPO / "pyproject.toml").read_text()


def test_shipping_adds_the_package_and_pins_to_what_the_user_gives() -> None:
    package = str(Path(cluster.__file__).resolve().parents[1])
    everything = cluster.shipped_env("all", {"pip": ["tqdm"], "env_vars": {"A": "1"}})
    assert everything["py_modules"] == [package]
    assert everything["pip"] == [*cluster.pinned_requirements(), "tqdm"]
    assert everything["env_vars"] == {"A": "1"}
    as_object = cluster.shipped_env("all", {"pip": {"packages": ["tqdm"], "pip_check": False}})
    assert as_object["pip"]["packages"][-1] == "tqdm" and as_object["pip"]["pip_check"] is False
    code = cluster.shipped_env("code", {"py_modules": ["s3://b/extra.zip"]})
    assert code == {"py_modules": [package, "s3://b/extra.zip"]}
    assert cluster.shipped_env("none", {"env_vars": {}}) == {"env_vars": {}}
    with pytest.raises(InputError, match=r"conda is set.*--ship code"):
        cluster.shipped_env("all", {"conda": "env.yaml"})


def test_auto_ships_the_package_alone_only_where_every_node_has_the_pinned_versions() -> None:
    here = {"numba": "0.68.1", "numpy": "2.4.6"}
    both = {"10.0.0.1": dict(here), "10.0.0.2": dict(here)}
    assert cluster.choose_ship(both, here) == (
        "code",
        "every node (2) has gdsearch's pinned dependencies",
    )
    older = {**both, "10.0.0.2": {"numba": "0.61.0", "numpy": "2.4.6"}}
    assert cluster.choose_ship(older, here)[1] == "node 10.0.0.2 has numba 0.61.0, not 0.68.1"
    bare = {**both, "10.0.0.3": {"numba": None, "numpy": None}}
    assert cluster.choose_ship(bare, here) == ("all", "node 10.0.0.3 has numba none, not 0.68.1")
    assert cluster.choose_ship({}, here)[0] == "all"  # no answer: ship everything
    with pytest.raises(InputError, match="--ship"):
        cluster.shipped_env("auto", {})  # auto is a choice submit makes, not an environment


class _OldRay(http.server.BaseHTTPRequestHandler):
    """A job server on loopback that says it runs another Ray, as its /api/version does."""

    def do_GET(self) -> None:
        body = json.dumps({"version": "4", "ray_version": "2.41.0", "ray_commit": "x"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.server.posted = True  # type: ignore[attr-defined]
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def old_ray() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _OldRay)
    server.posted = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_cluster_on_another_ray_is_refused_in_one_line_before_anything_is_sent(
    cli: Cli, old_ray: http.server.HTTPServer, tmp_path: Path
) -> None:
    address = f"http://127.0.0.1:{old_ray.server_address[1]}"
    done = cli.run(
        [
            "submit",
            str(REPO / "jobs" / "seed_sine.toml"),
            "--address",
            address,
            "--results-dir",
            str(tmp_path / "never"),
            "--no-wait",
        ]
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Ray 2.41.0" in lines[0] and f"Ray {cluster.RAY_NEEDED}" in lines[0]
    assert not old_ray.posted  # type: ignore[attr-defined]
    assert not (tmp_path / "never").exists()


def test_the_entrypoint_needs_no_installed_script(cli: Cli) -> None:
    command = shlex.split(cluster.entrypoint("my job.toml", "s3://b/r"))
    assert command == [
        "python",
        "-m",
        "gdsearch",
        "run",
        "my job.toml",
        "--results-dir",
        "s3://b/r",
        "--no-progress",
    ]
    assert (REPO / "gdsearch" / "__main__.py").exists()
    ran = cli.run(["--version"])
    assert ran.returncode == 0 and ran.stdout.startswith("gdsearch ")


# --- KubeRay ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rayjob() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RAYJOB.read_text(encoding="utf-8"))
    return loaded


def _images(pod_template: dict[str, Any]) -> list[str]:
    return [c["image"] for c in pod_template["spec"]["containers"]]


def _env(pod_template: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for c in pod_template["spec"]["containers"] for e in c.get("env", [])}


def test_the_rayjob_is_a_kuberay_v1_job_on_the_stock_image(rayjob: dict[str, Any]) -> None:
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    clusters = spec["rayClusterSpec"]
    assert clusters["rayVersion"] == cluster.RAY_NEEDED
    head = clusters["headGroupSpec"]["template"]
    workers = clusters["workerGroupSpecs"]
    assert workers and all(group["groupName"] and group["replicas"] >= 1 for group in workers)
    templates = [head, spec["submitterPodTemplate"], *(group["template"] for group in workers)]
    for template in templates:
        assert all(
            image.startswith(f"rayproject/ray:{cluster.RAY_NEEDED}-py3")
            for image in _images(template)
        )
        env = _env(template)
        assert env["RAY_AUTH_MODE"]["value"] == "token"  # token auth on, from a Secret
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "RAY_AUTH_TOKEN"


def test_the_rayjob_runs_the_submitted_command_with_gdsearch_in_its_runtime_env(
    rayjob: dict[str, Any],
) -> None:
    spec = rayjob["spec"]
    command = shlex.split(spec["entrypoint"])
    job_file, results = command[4], command[6]
    assert spec["entrypoint"] == cluster.entrypoint(job_file, results)  # what submit sends
    assert results.startswith("s3://")  # results to an object store
    load_job(REPO / "jobs" / job_file)  # a shipped job, valid
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert env["working_dir"].endswith(".zip")
    assert len(env["py_modules"]) == 1 and env["py_modules"][0].endswith(".whl")
    import gdsearch

    assert f"gdsearch-{gdsearch.__version__}-py3-none-any.whl" in env["py_modules"][0]
    pinned = {_name(p): p for p in env["pip"]}
    assert set(pinned) == set(cluster.DEPENDENCIES)
    assert all("==" in p for p in pinned.values())


# --- ray up ----------------------------------------------------------------------------------


def test_the_ray_up_cluster_passes_rays_own_schema_with_token_auth_on_the_stock_image() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(RAY_UP.read_text(encoding="utf-8"))
    validate_config(prepare_config(config))  # Ray's cluster-launcher schema
    assert config["docker"]["image"].startswith(f"rayproject/ray:{cluster.RAY_NEEDED}-py3")
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert "/home/ray/.ray/auth_token" in config["file_mounts"]
    assert config["head_node_type"] in config["available_node_types"]
    head = " ".join(config["head_start_ray_commands"])
    assert "--port=6379" in head and "--dashboard-host=127.0.0.1" in head  # reached by tunnel
    assert any("--address=$RAY_HEAD_IP:6379" in c for c in config["worker_start_ray_commands"])
    assert not any("gdsearch" in c for c in config.get("setup_commands", []))  # shipped instead
