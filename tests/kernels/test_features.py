import numpy as np
import pytest

from benchmarks._reference import pandas_sliding_window as pandas_reference
from kernels.features import sliding_window_features


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pandas_rolling_groupby(seed):
    rng = np.random.default_rng(seed)
    n = 5000
    ts = np.sort(rng.integers(0, 4 * 3600, n)).astype(float)  # whole seconds: many ties
    keys = rng.integers(0, 40, n)
    amounts = rng.lognormal(3, 1, n).round(2)
    ours = sliding_window_features(ts, keys, amounts, windows_s=(60, 3600))
    for w in (60, 3600):
        ref = pandas_reference(ts, keys, amounts, w)
        np.testing.assert_array_equal(ours[f"count_{w}s"], ref["count"].to_numpy())
        np.testing.assert_allclose(ours[f"sum_{w}s"], ref["sum"].to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(ours[f"mean_{w}s"], ref["mean"].to_numpy(), rtol=1e-9)
        np.testing.assert_array_equal(ours[f"max_{w}s"], ref["max"].to_numpy())


def test_card_testing_burst_shows_in_the_one_minute_window():
    ts = np.array([0, 10, 20, 21, 22, 23, 24, 4000], dtype=float)
    cards = np.array([1, 2, 1, 1, 1, 1, 1, 1])
    amounts = np.array([50.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 80.0])
    f = sliding_window_features(ts, cards, amounts, windows_s=(60,))
    assert f["count_60s"].tolist() == [1, 1, 2, 3, 4, 5, 6, 1]
    assert f["max_60s"][6] == 50.0 and f["sum_60s"][6] == 55.0 and f["max_60s"][7] == 80.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timestamps_s": []}, "timestamps_s: is empty"),
        ({"windows_s": (0,)}, "windows_s: window lengths must be > 0"),
        ({"windows_s": ()}, "windows_s: give at least one"),
        ({"timestamps_s": [3.0, 1.0, 2.0]}, "timestamps_s: must be non-decreasing.*index 1"),
        ({"keys": [1, 2]}, "lengths differ"),
        ({"device": "tpu"}, "device: unknown device 'tpu'"),
        ({"amounts": [1.0, float("nan"), 2.0]}, "amounts: contains NaN"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    args = {"timestamps_s": [1.0, 2.0, 3.0], "keys": [1, 1, 2], "amounts": [1.0, 2.0, 3.0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sliding_window_features(**args)


def test_cuda_request_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the error is for machines without one")
    with pytest.raises(ValueError, match="device: 'cuda' asked for, but this machine has no CUDA GPU"):
        sliding_window_features([1.0], [1], [1.0], device="cuda")


@pytest.mark.parametrize("threads", [1, 2])
def test_matches_polars_and_duckdb_on_either_thread_count(threads):
    from benchmarks._reference import duckdb_sliding_window, polars_sliding_window

    rng = np.random.default_rng(7)
    n = 20_000
    ts = np.sort(rng.uniform(0, 2 * 86400, n)).round(3)
    keys = rng.integers(0, 500, n) * 1_000_003  # sparse ids: ranked, not used as indices
    amounts = rng.lognormal(3, 1, n).round(2)
    windows = (60.0, 3600.0, 86400.0)
    ours = sliding_window_features(ts, keys, amounts, windows, threads=threads)
    for ref in (polars_sliding_window(ts, keys, amounts, windows), duckdb_sliding_window(ts, keys, amounts, windows)):
        for w in windows:
            label = f"{w:g}s"
            np.testing.assert_array_equal(ours[f"count_{label}"], ref[f"count_{label}"])
            np.testing.assert_array_equal(ours[f"max_{label}"], ref[f"max_{label}"])
            np.testing.assert_allclose(ours[f"sum_{label}"], ref[f"sum_{label}"], rtol=1e-9)
            np.testing.assert_allclose(ours[f"mean_{label}"], ref[f"mean_{label}"], rtol=1e-9)


def test_chunks_larger_than_memory_give_the_same_features():
    from kernels.features import sliding_window_features_chunked

    rng = np.random.default_rng(3)
    n = 30_000
    ts = np.sort(rng.uniform(0, 3 * 86400, n)).round(3)
    keys = rng.integers(0, 300, n)
    amounts = rng.lognormal(3, 1, n).round(2)
    whole = sliding_window_features(ts, keys, amounts)
    chunks = ((ts[i:i + 4096], keys[i:i + 4096], amounts[i:i + 4096]) for i in range(0, n, 4096))
    parts = list(sliding_window_features_chunked(chunks))
    assert sum(len(p["count_60s"]) for p in parts) == n
    for name, values in whole.items():
        np.testing.assert_allclose(np.concatenate([p[name] for p in parts]), values, rtol=1e-12)
    with pytest.raises(ValueError, match="chunks: timestamps must continue in time order"):
        list(sliding_window_features_chunked(iter([(ts[100:200], keys[:100], amounts[:100]),
                                                   (ts[:100], keys[:100], amounts[:100])])))
