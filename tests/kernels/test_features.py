import numpy as np
import pytest
import torch

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
        ({"windows_s": (0.0004,)}, "windows_s: window lengths must be at least 1 ms"),
        ({"windows_s": (float("inf"),)}, "windows_s: window lengths must be > 0 seconds and finite"),
        ({"timestamps_s": [1.0, float("nan"), 3.0]}, "timestamps_s: contains NaN"),
        ({"timestamps_s": [0.0, 1.0, 5e15]}, "timestamps_s: the time span plus the longest window exceeds"),
        ({"keys": [1.0, 1.5, 2.0]}, "keys: must be integers"),
        ({"amounts": [1.0, float("inf"), 2.0]}, "amounts: contains NaN or infinity"),
        ({"engine": "cudf"}, "engine: must be one of auto, numba, torch"),
        ({"output": "pandas"}, "output: must be one of numpy, torch, arrow"),
    ],
)
@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_bad_input_names_the_argument(kwargs, message, engine):
    args = {"timestamps_s": [1.0, 2.0, 3.0], "keys": [1, 1, 2], "amounts": [1.0, 2.0, 3.0], "engine": engine}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sliding_window_features(**args)


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_a_batch_larger_than_free_memory_is_refused_naming_the_limit(monkeypatch, engine):
    from kernels import features

    monkeypatch.setattr(features, "available_bytes", lambda device: 100_000)
    ts = np.arange(10_000, dtype=float)
    with pytest.raises(ValueError, match=r"timestamps_s: 10,000 events need about .* GiB on cpu, which has 0.0 GiB "
                                         r"free; pass at most \d+ events per call"):
        sliding_window_features(ts, np.zeros(10_000, dtype=np.int64), np.ones(10_000), engine=engine)


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


def transactions(n, seed=0, cards=None):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0, 30 * 86400, n)).round(3)
    return ts, rng.integers(0, cards or max(1, n // 20), n), rng.lognormal(3, 1, n).round(2)


def test_the_cuda_algorithm_on_cpu_tensors_gives_the_cpu_engines_answers():
    ts, keys, amounts = transactions(100_000, seed=4)
    cpu = sliding_window_features(ts, keys, amounts, engine="numba")
    torch_engine = sliding_window_features(ts, keys, amounts, engine="torch")
    for name, values in cpu.items():
        if name.startswith(("count", "max")):
            np.testing.assert_array_equal(torch_engine[name], values)
        else:
            np.testing.assert_allclose(torch_engine[name], values, rtol=1e-15, atol=0)


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_window_sums_are_exact_against_fsum_at_a_million_events(engine):
    import math

    n = 1_000_000
    rng = np.random.default_rng(11)
    ts = np.sort(rng.uniform(0, 30 * 86400, n)).round(3)
    keys = rng.integers(0, 2_000, n)  # 500 events per card: long running sums
    amounts = rng.lognormal(3, 2, n)  # 0.0x to 1e6: wide magnitudes
    amounts[rng.integers(0, n, 200)] = 1e12  # a few huge amounts make a plain float64 prefix sum lossy
    windows = (60.0, 3600.0)
    ours = sliding_window_features(ts, keys, amounts, windows, engine=engine)
    sample = rng.choice(n, 400, replace=False)
    by_key = {k: np.flatnonzero(keys == k) for k in np.unique(keys[sample])}
    worst = {w: 0.0 for w in windows}
    naive_worst = 0.0
    for i in sample:
        members = by_key[keys[i]]
        members = members[members <= i]
        for w in windows:
            inside = members[ts[members] > ts[i] - w]
            exact = math.fsum(amounts[inside])
            worst[w] = max(worst[w], abs(ours[f"sum_{w:g}s"][i] - exact) / exact)
            prefix = np.cumsum(amounts[members])  # the old way: one float64 running sum per key
            start = len(members) - len(inside)
            naive = prefix[-1] - (prefix[start - 1] if start else 0.0)
            naive_worst = max(naive_worst, abs(naive - exact) / exact)
            assert ours[f"count_{w:g}s"][i] == len(inside)
    assert max(worst.values()) <= 1e-12, worst
    assert naive_worst > 1e-12  # the data is hard enough that a plain running sum would fail


@pytest.mark.parametrize("groups, slices", [(50, 1), (50, 8), (3_000_000, 2), (70_000, 16)])
def test_the_parallel_sort_is_the_stable_sort(groups, slices):
    from kernels.window_sweep import group_by_rank

    rng = np.random.default_rng(groups)
    rank = rng.integers(0, groups, 200_000)
    order, starts = group_by_rank(rank, groups, slices)
    np.testing.assert_array_equal(order, np.argsort(rank, kind="stable"))
    np.testing.assert_array_equal(starts, np.searchsorted(np.sort(rank), np.arange(groups + 1)))


def test_results_do_not_depend_on_the_thread_count():
    ts, keys, amounts = transactions(200_000, seed=5)
    one = sliding_window_features(ts, keys, amounts, threads=1)
    two = sliding_window_features(ts, keys, amounts, threads=2)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_keys_of_any_int64_value_group_like_their_ranks(engine):
    ts, keys, amounts = transactions(20_000, seed=6, cards=300)
    huge = keys * (2**40 + 7) - 2**62  # card ids across 2**40 and below zero: ranked, never used as indices
    np.testing.assert_equal(sliding_window_features(ts, huge, amounts, engine=engine),
                            sliding_window_features(ts, keys, amounts, engine=engine))


def test_outputs_as_arrow_table_and_as_tensors():
    import pyarrow as pa
    import torch

    ts, keys, amounts = transactions(5_000, seed=8)
    columns = sliding_window_features(ts, keys, amounts)
    table = sliding_window_features(ts, keys, amounts, output="arrow")
    assert isinstance(table, pa.Table) and table.column_names == list(columns)
    np.testing.assert_array_equal(table["sum_3600s"].to_numpy(), columns["sum_3600s"])
    tensors = sliding_window_features(ts, keys, amounts, engine="torch", output="torch")
    assert all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in tensors.values())
    np.testing.assert_array_equal(tensors["count_60s"].numpy(), columns["count_60s"])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 17, 100, 1000])
def test_the_sparse_table_maximum_matches_a_scan_for_every_window(n):
    """The CUDA engine's range maximum (one (levels, n) table, two gathers) against a plain scan,
    for windows of every length, on CPU tensors."""
    from kernels.features import _window_max

    generator = torch.Generator().manual_seed(n)
    values = torch.randn(n, dtype=torch.float64, generator=generator)
    right = torch.arange(n)
    left = torch.clamp(right - torch.randint(0, n, (n,), generator=generator), min=0)
    expected = torch.stack([values[lo:hi + 1].max() for lo, hi in zip(left.tolist(), right.tolist(), strict=True)])
    assert torch.equal(_window_max(values, left, right), expected)
