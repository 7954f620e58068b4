"""Held-out data: the samples a job sets aside to measure how its trials generalise.

``[data] validation = f`` holds out round(f × n) samples, chosen by the job seed alone, so every
trial of a job is trained on the same samples and measured on the same others, wherever it runs.
With ``stratify = true`` (class targets only) each class is held out in proportion to its size:
round(f × n) samples in all, each class's share by largest remainder, so that 30 of iris's 150
flowers are 10 of each species.
The held-out SSE is measured at every epoch at the weights whose training SSE that epoch
records; classification targets (one 0/1 column, or one-hot columns) are also scored by
accuracy: the share of held-out samples whose predicted class is the true one (the output above
0.5 for one column, the largest output for one-hot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsearch.errors import DataError

HOLDOUT_STREAM = 3
"""The job's random stream that chooses the held-out samples (see :mod:`gdsearch.job.trial`)."""


@dataclass(frozen=True)
class Holdout:
    """The held-out samples: inputs (m, d), targets (m, k), and whether they are classes."""

    X: np.ndarray
    Y: np.ndarray
    classes: bool

    def __len__(self) -> int:
        return self.X.shape[0]


def holdout_indices(
    n: int, fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The samples trained on and the samples held out, each sorted.

    Args:
        n: samples in the data set.
        fraction: the share held out, in (0, 1); round(fraction × n) samples.
        seed: the job seed: the same seed and n always hold out the same samples.
        labels: (n,) each sample's class, to hold out each class in proportion
            (:func:`stratified_counts`); None: the samples are drawn regardless of class.

    Raises:
        DataError: the fraction would hold out no sample, or leave none to train on.
    """
    held = round(fraction * n)
    if not 1 <= held < n:
        raise DataError(
            f"validation: {fraction:g} of {n} samples holds out {held}; it must hold out at "
            f"least 1 and leave at least 1 to train on"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, HOLDOUT_STREAM]))
    order = rng.permutation(n)
    if labels is None:
        return np.sort(order[held:]), np.sort(order[:held])
    classes, sizes = np.unique(labels, return_counts=True)
    counts = stratified_counts(sizes, held)
    chosen = [order[labels[order] == c][:k] for c, k in zip(classes, counts, strict=True)]
    out = np.sort(np.concatenate(chosen))
    return np.setdiff1d(np.arange(n), out), out


def stratified_counts(sizes: np.ndarray, held: int) -> np.ndarray:
    """How many of each class to hold out: ``held`` in all, each class's share of it in
    proportion to its size (largest remainder; ties to the earlier class)."""
    exact = held * sizes / sizes.sum()
    counts = np.floor(exact).astype(np.int64)
    extra = held - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:extra]] += 1
    return counts


def class_labels(Y: np.ndarray) -> np.ndarray:
    """Each sample's class (targets one 0/1 column, or one-hot): (n,)."""
    return (Y[:, 0] > 0.5).astype(np.int64) if Y.shape[1] == 1 else Y.argmax(axis=1)


def split(
    X: np.ndarray, Y: np.ndarray, fraction: float, seed: int, stratify: bool = False
) -> tuple[np.ndarray, np.ndarray, Holdout | None]:
    """The data trained on and the held-out samples (None where ``fraction`` is 0), each class
    held out in proportion where ``stratify``.

    Raises:
        DataError: ``stratify`` with targets that are not classes.
    """
    if not fraction:
        return X, Y, None
    fit, held = holdout_indices(X.shape[0], fraction, seed, stratified_labels(Y, stratify))
    return X[fit], Y[fit], Holdout(X[held], Y[held], is_classes(Y))


def stratified_labels(Y: np.ndarray, stratify: bool) -> np.ndarray | None:
    """The classes to stratify by (None where not asked).

    Raises:
        DataError: asked, but the targets are not classes.
    """
    if not stratify:
        return None
    if not is_classes(Y):
        raise DataError(
            "stratify: needs class targets (one column of 0s and 1s, or one-hot columns), "
            f"but the targets are {Y.shape[1]} column(s) of other values"
        )
    return class_labels(Y)


def is_classes(Y: np.ndarray) -> bool:
    """Whether targets are class labels: one column of 0s and 1s, or one-hot columns."""
    binary = bool(np.isin(Y, (0.0, 1.0)).all())
    return binary and (Y.shape[1] == 1 or bool((Y.sum(axis=1) == 1.0).all()))


def correct_share(outputs_t: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Each trial's accuracy: outputs ŷᵀ (K, k, m) against class targets Y (m, k); (K,)."""
    if Y.shape[1] == 1:
        right = (outputs_t[:, 0, :] > 0.5) == (Y[:, 0] > 0.5)
    else:
        right = outputs_t.argmax(axis=1) == Y.argmax(axis=1)
    return right.sum(axis=1) / Y.shape[0]


def held_out_summary(
    val_sse: np.ndarray, val_accuracy: np.ndarray | None, lengths: np.ndarray
) -> dict[str, np.ndarray]:
    """Each trial's held-out figures from its first ``lengths`` epochs: the SSE at the last
    epoch, the lowest SSE and the first epoch of it (-1 with no epoch), and, for class targets,
    the accuracy at the last epoch and the highest (NaN where there is none).

    Args:
        val_sse: (K, epochs + 1) held-out SSE per epoch. val_accuracy: likewise, or None.
        lengths: (K,) epochs of history each trial keeps.
    """
    K = len(lengths)
    kept = np.arange(val_sse.shape[1]) < lengths[:, None]  # (K, epochs + 1)
    has = lengths > 0
    last = np.maximum(lengths - 1, 0)

    def final(values: np.ndarray) -> np.ndarray:
        return np.where(has, values[np.arange(K), last], np.nan)

    sse = np.where(kept & ~np.isnan(val_sse), val_sse, np.inf)
    lowest = sse.argmin(axis=1)
    found = np.isfinite(sse[np.arange(K), lowest])
    out = {
        "final_val_sse": final(val_sse),
        "min_val_sse": np.where(found, sse[np.arange(K), lowest], np.nan),
        "min_val_epoch": np.where(found, lowest, -1),
    }
    if val_accuracy is not None:
        accuracy = np.where(kept & ~np.isnan(val_accuracy), val_accuracy, -np.inf)
        best = accuracy.max(axis=1)
        out["final_val_accuracy"] = final(val_accuracy)
        out["best_val_accuracy"] = np.where(np.isfinite(best), best, np.nan)
    return out
