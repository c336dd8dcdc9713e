import pytest

from kernels import sizing


def test_growth_stops_where_the_rate_stops_rising():
    # recorded bf16 matmul TFLOP/s of an H200 by size (issue 27): saturates at 8192
    rates = {1024: 180.0, 2048: 245.0, 4096: 610.0, 8192: 779.0, 16384: 781.0}
    seen = []
    sweep = sizing.grow_until_plateau(lambda n: seen.append(n) or rates[n], sorted(rates))
    assert sweep.best_size == 16384 and sweep.sizes == (1024, 2048, 4096, 8192, 16384)
    rates[16384] = 700.0  # a slower largest size: the best is still the plateau's start
    assert sizing.grow_until_plateau(lambda n: rates[n], sorted(rates)).best_size == 8192


def test_growth_stops_early_on_a_flat_device():
    calls = []
    sweep = sizing.grow_until_plateau(lambda n: calls.append(n) or 100.0, [256, 512, 1024, 2048])
    assert calls == [256, 512] and sweep.best_size == 256 and sweep.to_dict()["best_rate"] == 100.0


@pytest.mark.parametrize("sizes", [[], [4, 2], [0, 1], [3, 3]])
def test_bad_sizes_are_named(sizes):
    with pytest.raises(ValueError, match="sizes: give positive sizes in increasing order"):
        sizing.grow_until_plateau(lambda n: 1.0, sizes)


def test_sizes_follow_the_device():
    h200 = 150 * 10**9
    assert sizing.matmul_sizes("gpu", h200) == [1024, 2048, 4096, 8192, 16384]
    assert sizing.matmul_sizes("gpu", 2 * 2**30) == [1024, 2048, 4096, 8192]  # 3 x 8192^2 x 2 B <= 512 MiB
    assert sizing.matmul_sizes("cpu", h200) == [256, 512, 1024, 2048]
    assert sizing.bandwidth_megabytes("gpu", h200)[-1] == 4096
    assert sizing.bandwidth_megabytes("gpu", 2 * 2**30) == [64, 128, 256]
    assert sizing.batch_sizes("gpu")[0] == 4096 and sizing.batch_sizes("gpu")[-1] == 262_144
    assert sizing.batch_sizes("cpu")[-1] == 4096
    assert sizing.feature_events("gpu") == 10_000_000 and sizing.feature_events("cpu") == 1_000_000
    assert sizing.feature_events("gpu", quick=True) == 50_000
