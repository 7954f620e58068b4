"""Joining Ray: connect to a cluster or start an embedded one, and read the cluster's facts."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from gdsearch.errors import InputError, RunError, one_line

CONNECT_TIMEOUT_S = 5.0


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join or start Ray unless this process already has it; True if we started it.

    ``address`` (else ``RAY_ADDRESS``) names a cluster; without one an embedded local Ray
    starts on ``num_cpus`` cores (all by default). BLAS is held to one thread inside every training
    (``gdsearch.mlp.population``), so workers need no runtime_env of their own, which would
    make Ray start fresh worker processes for us.
    """
    import ray

    if ray.is_initialized():
        return False
    target = check_address(address, num_cpus)
    if target:
        _check_reachable(target)
    try:
        if target:
            ray.init(address=target, logging_level=logging.WARNING)
        else:
            ray.init(
                address="local",
                include_dashboard=False,
                logging_level=logging.WARNING,
                num_cpus=num_cpus,
            )
    except (ConnectionError, OSError, RuntimeError, ValueError) as exc:
        if target:
            raise InputError(
                f"--address {target!r}: cannot join the Ray cluster: {one_line(exc)}"
            ) from exc
        raise RunError(f"cannot start a local Ray instance: {one_line(exc)}") from exc
    return True


def check_address(address: str | None, num_cpus: int | None = None) -> str | None:
    """The cluster to join (``address``, else ``RAY_ADDRESS``), or None for an embedded Ray;
    refuses in one line a job server's URL given here and ``num_cpus`` with a cluster."""
    target = address or os.environ.get("RAY_ADDRESS")
    if target and target.startswith(("http://", "https://")):
        raise InputError(
            f"--address {target!r}: a job server's URL (for `gdsearch submit`); `run` joins a "
            "cluster at HEAD:6379 or ray://HEAD:10001 (RAY_ADDRESS)"
        )
    if target and num_cpus is not None:
        raise InputError(
            f"--num-cpus {num_cpus}: only for the embedded Ray; a cluster at {target!r} has "
            "the CPUs it has"
        )
    return target


def _check_reachable(address: str) -> None:
    """Fail fast with one line where nothing listens (Ray itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"--address {address!r}: nothing answers at {host}:{port} ({reason})"
        ) from None


def ray_running() -> bool:
    """Whether this process has joined or started Ray already (without importing Ray)."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def cluster_facts() -> dict[str, Any]:
    """Ray's version, the cluster's CPUs and its live nodes, as the manifest records them."""
    import ray

    nodes = [
        {
            "node_id": node["NodeID"],
            "address": node["NodeManagerAddress"],
            "cpus": node.get("Resources", {}).get("CPU", 0),
        }
        for node in ray.nodes()
        if node.get("Alive")
    ]
    return {
        "ray_version": ray.__version__,
        "cpus": max(1, int(ray.cluster_resources().get("CPU", 1))),
        "nodes": nodes,
    }


def local_facts() -> dict[str, Any]:
    """This process as the manifest records where a local run trained: one CPU, no Ray."""
    return {
        "ray_version": None,
        "cpus": 1,
        "nodes": [{"node_id": f"local:{socket.gethostname()}", "address": "", "cpus": 1}],
    }
