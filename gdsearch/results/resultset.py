"""A result set as its user holds it: the trials in memory, the history loaded or read by part.

:func:`gdsearch.load_results` gives one with its history (and sharpness) loaded, whole or the
part asked for; :func:`gdsearch.open_results` gives the same type with only the trials read, its
history read on first use or, by analysis and reports, one part at a time through
:meth:`Results.history_blocks`. A history grows with trials × epochs (a 100,000-trial search of
1,000 epochs is 10⁸ rows), its trials table only with trials.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.analysis.ranking import TIE_TOLERANCE
from gdsearch.data.holdout import Holdout
from gdsearch.errors import InputError, ResultsError
from gdsearch.job.spec import JobSpec, parse_job
from gdsearch.job.trial import initial_params
from gdsearch.mlp.network import Params
from gdsearch.results.schema import SHARPNESS_SCHEMA
from gdsearch.results.store import JOB_COPY, SCHEMAS, ResultsStore

if TYPE_CHECKING:  # pandas loads when results are read, not while a run writes them
    import optuna
    import pandas as pd

HistoryBlock = tuple[np.ndarray, np.ndarray]
"""trial_ids (n,) and their SSE (n, epochs + 1), NaN past each trial's last epoch."""


class Results:
    """A result set, or the part of it that was asked for.

    Attributes:
        trials: one row per trial (``gdsearch.results.schema.TRIALS_SCHEMA``), sorted by
            trial_id.
        history: one row per trial and epoch: trial_id, epoch, sse (and val_sse where the job
            holds data out); sorted by trial_id, then epoch. Read on first use where the result
            set was opened with ``open_results`` (then it holds every row in memory).
        sharpness: one row per measurement where the job set ``sharpness_every``: trial_id,
            epoch, sharpness (the top Hessian eigenvalue of the loss at that epoch's weights);
            empty otherwise. Sorted as the history.
        landscapes: where ``gdsearch landscape`` drew some, each chosen trial's SSE on slices
            through weight space (``gdsearch.results.schema.LANDSCAPE_SCHEMA``): trial_id,
            kind, x, y, epoch, sse; read on first use, empty where none was drawn.
        landscape_trials: one row per trial whose landscape is stored: the settings it was
            drawn with, the share of its path its plane holds, λ at its final weights.
        manifest: the run's manifest.json.
        path: where it was read from.
        job_source: the job file as it was run (the copy stored beside the results), or "".
    """

    def __init__(
        self,
        trials: pd.DataFrame,
        history: pd.DataFrame | None = None,
        manifest: dict[str, Any] | None = None,
        path: str = "",
        job_source: str = "",
        sharpness: pd.DataFrame | None = None,
        *,
        store: ResultsStore | None = None,
        parts: pd.Series | None = None,
    ) -> None:
        """Tables in hand (``history`` given), or a store to read them from on first use
        (``store``, with ``parts``: each trial's part name, by trial_id)."""
        if history is None and store is None:
            raise ValueError("Results needs a history or a store to read one from")
        self.trials = trials
        self.manifest = manifest if manifest is not None else {}
        self.path = path
        self.job_source = job_source
        self.store = store
        self.parts = parts
        self._tables: dict[str, pd.DataFrame] = {}
        if history is not None:
            self._tables["history"] = history
        if sharpness is not None:
            self._tables["sharpness"] = sharpness
        elif store is None:
            self._tables["sharpness"] = SHARPNESS_SCHEMA.empty_table().to_pandas()

    @property
    def history(self) -> pd.DataFrame:
        """The history of these trials as one DataFrame."""
        return self._table("history")

    @history.setter
    def history(self, frame: pd.DataFrame) -> None:
        self._tables["history"] = frame

    @property
    def sharpness(self) -> pd.DataFrame:
        """The sharpness of these trials (empty where the job did not measure it)."""
        return self._table("sharpness")

    @sharpness.setter
    def sharpness(self, frame: pd.DataFrame) -> None:
        self._tables["sharpness"] = frame

    @property
    def landscapes(self) -> pd.DataFrame:
        """The landscapes of these trials (empty where none was drawn)."""
        return self._table("landscapes")

    @property
    def lr_range(self) -> pd.DataFrame:
        """The learning-rate range tests of the job's ``[lr_range]`` table, one row per step
        of each comparison group's and seed's sweep (empty where the job ran none)."""
        return self._table("lr_range")

    @property
    def landscape_trials(self) -> pd.DataFrame:
        """One row per trial of these whose landscape is stored."""
        return self._table("landscape_trials")

    def optuna_study(self) -> optuna.Study:
        """The Optuna study of a result set searched by a sampler, its trials in the order
        they were proposed, for Optuna's own plots (needs the ``optuna`` extra; see
        :func:`gdsearch.results.study.rebuild_study`).

        Raises:
            ResultsError: the result set was not searched by a sampler.
        """
        from gdsearch.results.study import rebuild_study

        return rebuild_study(self)

    def _table(self, kind: str) -> pd.DataFrame:
        if kind not in self._tables:
            if self.store is None and not self.path:  # tables in hand, no store behind them
                return SCHEMAS[kind].empty_table().to_pandas()
            store = self.store if self.store is not None else ResultsStore(self.path)
            table = store.read_table(kind)
            if kind == "lr_range":  # of the groups, not of trials
                self._tables[kind] = table.to_pandas()
                return self._tables[kind]
            ids = pa.array(self.trials["trial_id"], pa.string())
            order = ["trial_id", "epoch"] if kind in ("history", "sharpness") else ["trial_id"]
            self._tables[kind] = (
                table.filter(pc.is_in(table.column("trial_id"), value_set=ids))
                .to_pandas()
                .sort_values(order, ignore_index=True, kind="stable")
            )
        return self._tables[kind]

    def history_blocks(self, trial_ids: Iterable[str] | None = None) -> Iterator[HistoryBlock]:
        """The histories of these trials (default: all), one block at a time: one part at a
        time where the history is on disk, else one block of the loaded history.

        Yields:
            ``(trial_ids, sse)``: the block's wanted trials that have history rows, and their
            SSE as a (trials, epochs + 1) array, NaN past each trial's last epoch.
        """
        if self.parts is None or "history" in self._tables:
            yield from _loaded_blocks(self.history, trial_ids)
            return
        assert self.store is not None
        wanted = self.parts if trial_ids is None else self.parts.reindex(list(trial_ids))
        wanted = wanted[wanted.isin(self.store.parts("history"))]  # a part repair dropped: none
        for name, ids in wanted.groupby(wanted, sort=True):
            table = self.store.read_checked("history", str(name), ["trial_id", "epoch", "sse"])
            block = dense_history(table, ids.index.to_numpy(dtype=object))
            if block is not None:
                yield block

    def job_and_data(self) -> tuple[JobSpec, np.ndarray, np.ndarray] | None:
        """The job these results were run from and its data (:meth:`load_job_and_data`); None
        if the job copy is missing or its data cannot be loaded here."""
        try:
            spec, X, Y, _ = self.load_job_and_data()
        except (InputError, ResultsError):
            return None
        return spec, X, Y

    def load_job_and_data(self) -> tuple[JobSpec, np.ndarray, np.ndarray, Holdout | None]:
        """The job these results were run from and its data, loaded from where the job says
        they came from: the samples trained on, and those held out (None where the job holds
        none out). A relative data
        path resolves against the job file's folder as the run saw it, from any working
        directory, else against the job file's path as recorded.

        Raises:
            ResultsError: the job copy is missing.
            InputError: its data cannot be loaded here (names the key or file).
        """
        source = self.job_source or (ResultsStore(self.path).read_job_copy() if self.path else "")
        if not source:
            raise ResultsError(
                f"{self.path}/{JOB_COPY}: missing or unreadable, so its trials cannot be "
                "trained again"
            )
        recorded = self.manifest.get("job_file") or JOB_COPY
        places = [recorded]
        folder = self.manifest.get("job_dir")
        if folder and Path(folder).is_dir():
            places.insert(0, str(Path(folder) / Path(recorded).name))
        first: InputError | None = None
        for place in places:
            try:
                spec = parse_job(source, place)
                X, Y, holdout = spec.held_out(*spec.load_data())
            except InputError as exc:
                first = first or exc
                continue
            return spec, X, Y, holdout
        assert first is not None
        raise first

    def initial_params(self, trial_id: str) -> Params:
        """A stored trial's starting weights, so that anyone can train it again by hand.

        They depend only on the job seed, the init scheme and scale, the layer sizes and the
        replicate seed, all of which the result set records::

            params = res.initial_params(trial_id)
            history, _ = gdsearch.mlp.train(params, X, Y, lr=row.lr, epochs=row.epochs, ...)

        Returns:
            (W, b) pairs, W of shape (fan_in, fan_out), b of shape (fan_out,).

        Raises:
            ResultsError: no such trial, or a manifest without the data's shape.
        """
        rows = self.trials[self.trials["trial_id"] == trial_id]
        shape = self.manifest.get("data_shape") or {}
        job_seed = (self.manifest.get("compat") or {}).get("job_seed")
        if rows.empty:
            raise ResultsError(f"{self.path}: no trial {trial_id!r} stored")
        if "n_inputs" not in shape or job_seed is None:
            raise ResultsError(f"{self.path}: manifest.json lacks the data's shape or job seed")
        import pandas as pd  # loaded already: the trials are a DataFrame

        row = rows.iloc[0]
        hidden = tuple(int(width) for width in row["hidden"].split("-") if width)
        scale = None if pd.isna(row["init_scale"]) else float(row["init_scale"])
        return initial_params(
            int(job_seed),
            row["init"],
            hidden,
            int(row["seed"]),
            scale,
            int(shape["n_inputs"]),
            int(shape["n_outputs"]),
        )

    def best(
        self, by: str = "final_sse", per: str = "group", tolerance: float = TIE_TOLERANCE
    ) -> pd.DataFrame:
        """The best learning rate of each comparison group, ties said as ties::

            res.best()                        # by median final SSE over seeds, per group
            res.best("epochs_to_tolerance")   # the fastest to within 5% of the group's best
            res.best(per="seed")              # per group and replicate seed

        Rates whose values lie within ``tolerance`` of the lowest, relative to it, tie: then
        ``lr`` is NaN, ``tie`` True and ``best_lrs`` holds them all. See
        :func:`gdsearch.results.summary.best` for the columns.
        """
        from gdsearch.results import summary  # the analysis, with pandas: when asked for

        return summary.best(self, by, per, tolerance)

    def _repr_html_(self) -> str:
        """What a notebook shows: the job, trials by status, epochs, the best rates, where."""
        from gdsearch.results import summary

        return summary.summary_html(self)

    def __repr__(self) -> str:
        from gdsearch.results import summary

        return summary.summary_line(self)


ResultSet = Results
"""The same type under the name ``open_results`` gave it before 0.3."""


def _loaded_blocks(
    history: pd.DataFrame, trial_ids: Iterable[str] | None
) -> Iterator[HistoryBlock]:
    """A loaded history's rows of these trials (default: all) as one block."""
    if trial_ids is not None:
        history = history[history["trial_id"].isin(list(trial_ids))]
    if history.empty:
        return
    wide = history.pivot(index="trial_id", columns="epoch", values="sse")
    wide = wide.reindex(columns=range(int(history["epoch"].max()) + 1))
    yield wide.index.to_numpy(dtype=object), wide.to_numpy(dtype=np.float64)


def dense_history(table: pa.Table, ids: np.ndarray) -> HistoryBlock | None:
    """A history table's rows of these trials as one block: the trials that have rows, and their
    SSE as a (trials, epochs + 1) array, NaN past each one's last epoch; None if none has."""
    value_set = pa.array(ids, pa.string())
    row = pc.index_in(table.column("trial_id"), value_set=value_set)
    kept = pc.is_valid(row)
    row = row.filter(kept).to_numpy()
    epoch = table.column("epoch").filter(kept).to_numpy()
    sse = table.column("sse").filter(kept).to_numpy()
    if not len(row):
        return None
    present = np.zeros(len(ids), dtype=bool)
    present[row] = True
    dense = np.full((len(ids), int(epoch.max()) + 1), np.nan)  # (trials, epochs + 1)
    dense[row, epoch] = sse
    return ids[present], dense[present]
