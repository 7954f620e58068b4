"""The Optuna study of a result set searched by a sampler: the job's axes as Optuna's
distributions, a stored trial's objective and point, and the study rebuilt from the stored
trials in the order they were proposed (:meth:`gdsearch.Results.optuna_study`). The search that
proposes them is :mod:`gdsearch.search.sampled`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from gdsearch.errors import ResultsError
from gdsearch.job.space import Axis
from gdsearch.job.spec import JobSpec, Sampling, parse_job
from gdsearch.mlp.stopping import Status
from gdsearch.results.store import JOB_COPY, ResultsStore

if TYPE_CHECKING:
    import optuna

    from gdsearch.results.resultset import Results


def optuna_module() -> Any:
    """The ``optuna`` module, or a one-line InputError saying how to get it."""
    from gdsearch.errors import InputError

    try:
        import optuna
    except ImportError:
        raise InputError(
            "[search] sampler: needs Optuna; pip install 'gdsearch[optuna]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(axes: dict[str, Axis]) -> dict[str, Any]:
    """The job's searched axes as Optuna distributions, by axis name: a range as a float
    distribution (log for ``loguniform``), a list of values as a categorical one (values as
    text where Optuna cannot hold them: hidden-layer lists)."""
    optuna = optuna_module()
    out: dict[str, Any] = {}
    for key, axis in sorted(axes.items()):
        if axis.distribution:
            log_scale = axis.distribution == "loguniform"
            out[key] = optuna.distributions.FloatDistribution(axis.low, axis.high, log=log_scale)
        else:
            out[key] = optuna.distributions.CategoricalDistribution(
                [_choice(v) for v in axis.values]
            )
    return out


def _choice(value: Any) -> Any:
    """An axis value as a categorical choice: a hidden-layer tuple as "16-16" ("" for none)."""
    return "-".join(map(str, value)) if isinstance(value, tuple) else value


def objective(row: dict[str, Any], sampling: Sampling) -> float | None:
    """A stored trial's objective: its ``objective`` column, +inf where it diverged (the
    study must learn to avoid it), None where it failed (told as failed)."""
    if row["status"] == Status.FAILED.value:
        return None
    if row["status"] == Status.DIVERGED.value:
        return math.inf
    value = row.get(sampling.objective)
    return math.inf if value is None or value != value else float(value)


def rebuild_study(results: Results) -> optuna.Study:
    """The study of a result set searched by a sampler, its trials in the order they were
    proposed, each with its parameters and objective: for Optuna's own plots
    (``optuna.visualization.plot_optimization_history(study)``).

    Raises:
        ResultsError: the result set was not searched by a sampler, or its job is missing.
    """
    source = results.job_source or (
        ResultsStore(results.path).read_job_copy() if results.path else ""
    )
    spec = parse_job(source, JOB_COPY) if source else None
    if spec is None or spec.sampling is None:
        raise ResultsError(f"{results.path}: not a result set searched by a sampler")
    optuna = optuna_module()
    space = distributions(spec.axes)
    study = optuna.create_study(direction="minimize")
    proposed = results.trials.dropna(subset=["sampler_round"]).sort_values(
        ["sampler_round", "sampler_index"]
    )
    for record in proposed.to_dict("records"):
        row = {str(k): v for k, v in record.items()}
        params = {key: _choice(_value(row, key)) for key in space}
        value = objective(row, spec.sampling)
        if value is None or math.isinf(value):
            state, value = optuna.trial.TrialState.FAIL, None
        else:
            state = optuna.trial.TrialState.COMPLETE
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=space,
                value=value,
                state=state,
                user_attrs={"trial_id": row["trial_id"], "status": row["status"]},
            )
        )
    return study


def point_of(row: dict[str, Any], spec: JobSpec) -> dict[str, Any]:
    """A stored trial's values of the job's axes: the point it was proposed at."""
    return {key: _value(row, key) for key in spec.axes}


def _value(row: dict[str, Any], key: str) -> Any:
    """An axis's value as the trials table holds it, as the axis holds it."""
    value = row[key]
    if key == "hidden":
        return tuple(int(w) for w in str(value).split("-") if w)
    return value.item() if hasattr(value, "item") else value
