"""The device and collective each training worker uses follow the placement's device kind; the
GPU and NPU branches are chosen here on a CPU-only machine (no CUDA, no torch_npu)."""

import pytest

from runtime.training.devices import (
    collective_backend,
    compute_kind,
    lightgbm_device,
    npu_available,
    select_torch_device,
    xgboost_device,
)


def test_collective_and_compute_kind_follow_the_placement():
    assert [collective_backend(k, False) for k in ("cpu", "gpu", "npu")] == ["gloo", "nccl", "hccl"]
    assert [collective_backend(k, True) for k in ("cpu", "gpu", "npu")] == ["gloo"] * 3  # emulated: no device
    assert [compute_kind(k, True) for k in ("gpu", "npu")] == ["cpu", "cpu"]
    assert compute_kind("npu", False) == "npu"


def test_torch_device_per_kind_and_local_rank():
    assert select_torch_device("cpu", True, True, 3) == "cpu"
    assert select_torch_device("gpu", True, False, 1) == "cuda:1"
    assert select_torch_device("npu", False, True, 2) == "npu:2"


def test_a_missing_device_fails_naming_it_instead_of_training_on_the_cpu():
    with pytest.raises(ValueError, match="placed on a GPU but CUDA is not available"):
        select_torch_device("gpu", False, False, 0)
    with pytest.raises(ValueError, match="torch_npu is not importable"):
        select_torch_device("npu", True, False, 0)
    assert npu_available() is False  # no torch_npu on this machine: the NPU branch is never taken silently


def test_tree_libraries_get_their_device_parameter():
    assert [xgboost_device(k) for k in ("cpu", "gpu", "npu")] == ["cpu", "cuda", "cpu"]
    assert [lightgbm_device(k) for k in ("cpu", "gpu")] == ["cpu", "cuda"]
