"""Results at an s3:// URI, against a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import gdsearch
from gdsearch.cli import main
from gdsearch.results.lock import ResultsLock
from gdsearch.results.store import ResultsStore

pytestmark = pytest.mark.ray

BUCKET = "gdsearch-results"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1, credentials and endpoint in the standard AWS variables."""
    server_module = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        boto3 = pytest.importorskip("boto3")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()


def test_results_written_to_s3_load_like_local_ones(
    local_ray: None, s3_endpoint: str, small_job: Path, tmp_path: Path
) -> None:
    remote = gdsearch.run_search(small_job, f"s3://{BUCKET}/runs", show_progress=False)
    local = gdsearch.run_search(small_job, tmp_path, show_progress=False)
    assert remote.path == f"s3://{BUCKET}/runs/small" and remote.ran == local.ran == 32

    from_s3 = gdsearch.load_results(remote.path)
    from_disk = gdsearch.load_results(local.path)
    pd.testing.assert_frame_equal(from_s3.history, from_disk.history)
    chosen = {"filters": [("init", "==", "xavier"), ("lr", ">=", 0.1)], "every": 7}
    part_of_s3 = gdsearch.load_results(remote.path, **chosen)
    pd.testing.assert_frame_equal(
        part_of_s3.history, gdsearch.load_results(local.path, **chosen).history
    )
    assert 0 < len(part_of_s3.trials) < len(from_s3.trials)
    columns = ["trial_id", "lr", "status", "final_sse", "diverged_epoch"]
    pd.testing.assert_frame_equal(from_s3.trials[columns], from_disk.trials[columns])
    assert from_s3.manifest["status"] == "complete"
    assert from_s3.job_source == from_disk.job_source == small_job.read_text()
    from gdsearch.report import predicted_limits  # the report finds the job beside the results

    limits = predicted_limits(from_s3)
    assert limits and limits == predicted_limits(from_disk)

    s3, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}")  # endpoint from AWS_ENDPOINT_URL
    names = {
        info.base_name for info in s3.get_file_info(pafs.FileSelector(f"{BUCKET}/runs/small"))
    }
    assert names == {"trials", "history", "manifest.json", "job.toml"}
    history = pq.read_table(f"{BUCKET}/runs/small/history", filesystem=s3).to_pandas()
    assert len(history) == len(from_disk.history)
    np.testing.assert_array_equal(
        np.sort(history["sse"].to_numpy()), np.sort(from_disk.history["sse"].to_numpy())
    )


def test_resuming_on_s3_runs_nothing_twice(
    local_ray: None, s3_endpoint: str, small_job: Path
) -> None:
    first = gdsearch.run_search(small_job, f"s3://{BUCKET}/again", show_progress=False)
    second = gdsearch.run_search(small_job, f"s3://{BUCKET}/again", show_progress=False)
    assert (first.ran, second.ran, second.skipped) == (32, 0, 32)
    assert gdsearch.load_results(second.path).trials["trial_id"].is_unique


def test_damaged_part_on_s3_is_named_on_load_then_repaired_and_rerun(
    local_ray: None,
    s3_endpoint: str,
    small_job: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    remote = gdsearch.run_search(small_job, f"s3://{BUCKET}/damaged", show_progress=False)
    local = gdsearch.run_search(small_job, tmp_path, show_progress=False)
    s3, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}")
    parts = s3.get_file_info(pafs.FileSelector(f"{BUCKET}/damaged/small/trials"))
    part = sorted(info.path for info in parts)[0]
    with s3.open_input_stream(part) as stream:
        whole = stream.read()
    with s3.open_output_stream(part) as stream:  # a torn upload, as a foreign writer might leave
        stream.write(whole[: len(whole) // 2])
    lost = pq.read_table(pa.BufferReader(whole)).num_rows

    with pytest.raises(gdsearch.GdsearchError, match=part.rpartition("/")[2]):
        gdsearch.load_results(remote.path)
    capsys.readouterr()
    assert main(["repair", remote.path]) == 0
    out = capsys.readouterr().out
    assert f"{32 - lost} of 32 trials stored" in out and "unreadable" in out
    again = gdsearch.run_search(small_job, f"s3://{BUCKET}/damaged", show_progress=False)
    assert (again.ran, again.skipped) == (lost, 32 - lost)

    repaired, intact = gdsearch.load_results(remote.path), gdsearch.load_results(local.path)
    pd.testing.assert_frame_equal(repaired.history, intact.history)
    varying = ["node", "wall_s"]
    pd.testing.assert_frame_equal(
        repaired.trials.drop(columns=varying), intact.trials.drop(columns=varying)
    )


def test_lock_on_s3_refuses_a_second_taker_and_is_gone_once_released(
    s3_endpoint: str,
) -> None:
    store = ResultsStore(f"s3://{BUCKET}/locked/small")
    with ResultsLock(store) as lock:
        assert store.fs.get_file_info(lock.path).type == pafs.FileType.File
        with pytest.raises(gdsearch.GdsearchError, match=f"pid {os.getpid()}"):
            ResultsLock(store).acquire()
    assert store.fs.get_file_info(lock.path).type == pafs.FileType.NotFound
