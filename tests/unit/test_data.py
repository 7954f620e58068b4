"""Data sets: the toy generators, CSV and Parquet files, and the errors bad input raises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdsearch.data import load_dataset
from gdsearch.errors import DataError
from tests.conftest import REPO

IRIS = REPO / "data" / "iris.csv"
IRIS_FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


# --- toy generators --------------------------------------------------------------------------


def test_sine_is_x_0_to_9_as_a_column_and_sin_x() -> None:
    X, Y = load_dataset("sine")
    assert X.shape == (10, 1)
    assert Y.shape == (10, 1)
    assert X.dtype == np.float64
    assert Y.dtype == np.float64
    assert np.array_equal(X[:, 0], np.arange(10.0))
    assert np.array_equal(Y[:, 0], np.sin(np.arange(10.0)))


def test_xor_default_is_the_four_row_truth_table() -> None:
    X, Y = load_dataset("xor")
    assert X.dtype == np.float64
    assert Y.dtype == np.float64
    assert np.array_equal(X, [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert np.array_equal(Y, [[0.0], [1.0], [1.0], [0.0]])


@pytest.mark.parametrize("name", ["moons", "circles", "spirals"])
@pytest.mark.parametrize("n", [1, 2, 101, 200])
def test_two_class_generator_gives_n_points_and_one_0_1_label_column(name: str, n: int) -> None:
    X, Y = load_dataset(name, n_samples=n)
    assert X.shape == (n, 2)
    assert Y.shape == (n, 1)
    assert X.dtype == np.float64
    assert Y.dtype == np.float64
    assert set(np.unique(Y)) <= {0.0, 1.0}
    if n >= 2:
        assert set(np.unique(Y)) == {0.0, 1.0}
        assert abs(int(Y.sum()) - n / 2) <= 0.5  # balanced classes
    assert np.all(np.isfinite(X))


def test_spirals_with_three_arms_gives_one_hot_labels() -> None:
    X, Y = load_dataset("spirals", n_samples=90, arms=3)
    assert X.shape == (90, 2)
    assert Y.shape == (90, 3)
    assert Y.dtype == np.float64
    assert set(np.unique(Y)) == {0.0, 1.0}
    assert np.array_equal(Y.sum(axis=1), np.ones(90))
    assert np.array_equal(Y.sum(axis=0), [30.0, 30.0, 30.0])


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("xor", {"n_samples": 40, "noise": 0.1}),
        ("moons", {}),
        ("circles", {}),
        ("spirals", {}),
        ("spirals", {"arms": 4}),
    ],
)
def test_generator_is_reproducible_by_seed(name: str, options: dict[str, object]) -> None:
    X1, Y1 = load_dataset(name, seed=5, **options)
    X2, Y2 = load_dataset(name, seed=5, **options)
    X3, Y3 = load_dataset(name, seed=6, **options)
    assert np.array_equal(X1, X2)
    assert np.array_equal(Y1, Y2)
    assert not np.allclose(X1, X3)
    assert np.array_equal(Y1, Y3)  # the seed moves points, never labels


def test_noiseless_moons_lie_on_their_unit_circles() -> None:
    X, Y = load_dataset("moons", n_samples=51, noise=0.0)
    outer = X[Y[:, 0] == 0]
    inner = X[Y[:, 0] == 1]
    assert len(outer) == 25
    assert len(inner) == 26
    np.testing.assert_allclose(outer[:, 0] ** 2 + outer[:, 1] ** 2, 1.0, rtol=0, atol=1e-12)
    assert np.all(outer[:, 1] >= -1e-12)  # upper half circle
    np.testing.assert_allclose(
        (inner[:, 0] - 1.0) ** 2 + (inner[:, 1] - 0.5) ** 2, 1.0, rtol=0, atol=1e-12
    )
    assert np.all(inner[:, 1] <= 0.5 + 1e-12)  # lower half circle


def test_noiseless_circles_have_radius_1_and_factor() -> None:
    X, Y = load_dataset("circles", n_samples=40, noise=0.0, factor=0.3)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[Y[:, 0] == 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(radius[Y[:, 0] == 1], 0.3, atol=1e-12)


# --- files -----------------------------------------------------------------------------------


def test_iris_csv_loads_four_features_and_one_hot_species() -> None:
    X, Y = load_dataset("file", path=str(IRIS), target="species")
    assert X.shape == (150, 4)
    assert Y.shape == (150, 3)
    assert X.dtype == np.float64
    assert Y.dtype == np.float64
    assert np.array_equal(Y.sum(axis=1), np.ones(150))
    assert np.array_equal(Y.sum(axis=0), [50.0, 50.0, 50.0])
    frame = pd.read_csv(IRIS)
    assert np.array_equal(X, frame[IRIS_FEATURES].to_numpy(dtype=np.float64))
    # classes sorted: setosa, versicolor, virginica
    assert np.array_equal(Y[0], [1.0, 0.0, 0.0])
    assert np.array_equal(Y[-1], [0.0, 0.0, 1.0])


def test_iris_standardized_has_mean_0_and_std_1() -> None:
    X, _ = load_dataset("file", path=str(IRIS), target="species", standardize=True)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1.0, atol=1e-12)


def test_iris_feature_subset_keeps_only_those_columns_in_order() -> None:
    features = ["petal_width_cm", "sepal_length_cm"]
    X, Y = load_dataset("file", path=str(IRIS), target="species", features=features)
    assert X.shape == (150, 2)
    assert Y.shape == (150, 3)
    frame = pd.read_csv(IRIS)
    assert np.array_equal(X, frame[features].to_numpy(dtype=np.float64))


def test_numeric_target_columns_are_kept_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "reg.csv"
    path.write_text("x,y1,y2\n1,2,3\n4,5,6\n", encoding="utf-8")
    X, Y = load_dataset("file", path=str(path), target=["y1", "y2"])
    assert np.array_equal(X, [[1.0], [4.0]])
    assert np.array_equal(Y, [[2.0, 3.0], [5.0, 6.0]])


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
@pytest.mark.parametrize("standardize", [False, True])
def test_parquet_file_loads_like_the_csv(tmp_path: Path, suffix: str, standardize: bool) -> None:
    parquet = tmp_path / f"iris{suffix}"
    pd.read_csv(IRIS).to_parquet(parquet)
    X_csv, Y_csv = load_dataset("file", path=str(IRIS), target="species", standardize=standardize)
    X_pq, Y_pq = load_dataset("file", path=str(parquet), target="species", standardize=standardize)
    assert X_pq.dtype == np.float64
    assert np.array_equal(X_pq, X_csv)
    assert np.array_equal(Y_pq, Y_csv)


# --- bad files -------------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def data_error(path: Path, **options: object) -> str:
    with pytest.raises(DataError) as info:
        load_dataset("file", path=str(path), **options)
    message = str(info.value)
    assert path.name in message
    return message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    message = data_error(tmp_path / "nowhere.csv", target="y")
    assert "not found" in message


def test_missing_target_column_names_the_column(tmp_path: Path) -> None:
    message = data_error(IRIS, target="label")
    assert "no column 'label'" in message
    assert "species" in message  # lists the columns there are


def test_missing_feature_column_names_the_column(tmp_path: Path) -> None:
    message = data_error(IRIS, target="species", features=["sepal_length_cm", "colour"])
    assert "no column 'colour'" in message


def test_text_in_numeric_feature_names_column_and_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n1,2,0\n3,abc,1\n5,6,0\n")
    message = data_error(path, target="y")
    assert "column 'b'" in message
    assert "'abc'" in message


def test_nan_in_feature_names_the_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n1,2,0\n3,,1\n5,6,0\n")
    message = data_error(path, target="y")
    assert "column 'b'" in message
    assert "nan" in message
    assert "row 1" in message


def test_infinity_in_feature_names_the_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n1,2,0\ninf,4,1\n5,6,0\n")
    message = data_error(path, target="y")
    assert "column 'a'" in message
    assert "inf" in message


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n")
    message = data_error(path, target="y")
    assert "no rows" in message


def test_zero_byte_file_cannot_be_read(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "")
    message = data_error(path, target="y")
    assert "cannot be read" in message


def test_row_with_too_many_fields_names_the_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n1,2,0\n3,4,1,9\n5,6,0\n")
    message = data_error(path, target="y")
    assert "cannot be read" in message
    assert "line 3" in message


def test_first_row_with_too_many_fields_is_rejected(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n1,2,0,7\n3,4,1\n5,6,0\n")
    data_error(path, target="y")


def test_every_row_with_one_field_too_many_is_rejected(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n1,2,0,7\n3,4,1,8\n5,6,0,9\n")
    data_error(path, target="y")


def test_unknown_file_suffix_is_rejected(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,y\n1,0\n2,1\n", name="data.txt")
    message = data_error(path, target="y")
    assert ".csv" in message


def test_single_class_target_is_rejected(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,y\n1,cat\n2,cat\n")
    message = data_error(path, target="y")
    assert "column 'y'" in message
    assert "one class" in message


# --- bad options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "fragments"),
    [
        pytest.param(
            "moons", {"noize": 0.1}, ("'moons'", "no option 'noize'"), id="unknown-option"
        ),
        pytest.param(
            "moons", {"n_samples": "many"}, ("'n_samples'", "'many'"), id="n_samples-str"
        ),
        pytest.param("moons", {"n_samples": 2.5}, ("'n_samples'", "2.5"), id="n_samples-float"),
        pytest.param("moons", {"n_samples": True}, ("'n_samples'", "True"), id="n_samples-bool"),
        pytest.param("moons", {"n_samples": 0}, ("n_samples", "got 0"), id="n_samples-zero"),
        pytest.param("circles", {"noise": -0.1}, ("noise", "-0.1"), id="noise-negative"),
        pytest.param("circles", {"factor": 1.0}, ("factor", "1.0"), id="factor-one"),
        pytest.param("spirals", {"arms": 1}, ("arms", "got 1"), id="arms-one"),
        pytest.param("file", {"target": "y"}, ("'file'", "'path'"), id="file-without-path"),
        pytest.param("mnist", {}, ("'mnist'",), id="unknown-dataset"),
    ],
)
def test_bad_option_raises_data_error_naming_option_and_value(
    name: str, options: dict[str, object], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(name, **options)
    for fragment in fragments:
        assert fragment in str(info.value)
