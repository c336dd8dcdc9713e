import importlib
from pathlib import Path

import pytest

from cluster.devices import CpuDiscovery, NvidiaGpuDiscovery, discover_local, group_devices
from cluster.devices.cpu import short_cpu_model
from cluster.devices.npu import AscendNpuDiscovery, parse_npu_smi_info
from cluster.devices.nvidia_gpu import short_gpu_model

DATA = Path(__file__).parent / "data"


@pytest.fixture
def fake_nvml():
    module = importlib.import_module("tests.cluster.fake_pynvml")
    module.calls.clear()
    module.fail_init = False
    module.devices = module.RECORDED
    return module


def test_cpu_discovery_reads_this_machine():
    import psutil

    [cpu] = CpuDiscovery().discover()
    assert cpu.kind == "cpu"
    assert cpu.count == psutil.cpu_count(logical=True)
    assert cpu.memory_total_bytes == psutil.virtual_memory().total
    assert 0.0 <= cpu.utilisation <= 1.0
    assert cpu.model


def test_this_machine_without_gpu_gives_empty_gpu_list_no_error():
    found = discover_local()
    assert [d.kind for d in found].count("cpu") == 1
    # this machine has no NVIDIA driver: NVML init fails and discovery reports none
    if not Path("/proc/driver/nvidia").exists():
        assert [d for d in found if d.kind == "gpu"] == []


def test_nvml_parsing_of_recorded_a100_and_h100(fake_nvml):
    a100, h100 = NvidiaGpuDiscovery(nvml=fake_nvml).discover()
    assert (a100.model, a100.memory_total_bytes, a100.memory_used_bytes) == ("A100", 85899345920, 4517920768)
    assert a100.utilisation == pytest.approx(0.37)
    assert a100.temperature_c == 41 and a100.ecc_uncorrected == 0 and a100.healthy
    assert a100.detail == "NVIDIA A100-SXM4-80GB"
    assert (h100.model, h100.memory_total_bytes, h100.index) == ("H100", 85520809984, 1)
    assert fake_nvml.calls == ["init", "shutdown"]


def test_nvml_ecc_errors_or_heat_mark_gpu_unhealthy(fake_nvml):
    fake_nvml.devices = [dict(fake_nvml.RECORDED[0], ecc=3), dict(fake_nvml.RECORDED[1], temp=95)]
    ecc_bad, hot = NvidiaGpuDiscovery(nvml=fake_nvml).discover()
    assert not ecc_bad.healthy and ecc_bad.ecc_uncorrected == 3
    assert not hot.healthy
    [group_a100, group_h100] = group_devices([ecc_bad, hot])
    assert not group_a100.healthy


def test_nvml_ecc_not_supported_is_unknown_not_fatal(fake_nvml):
    fake_nvml.devices = [dict(fake_nvml.RECORDED[0], ecc=None)]
    [gpu] = NvidiaGpuDiscovery(nvml=fake_nvml).discover()
    assert gpu.ecc_uncorrected is None and gpu.healthy


def test_nvml_missing_driver_gives_empty_list(fake_nvml):
    fake_nvml.fail_init = True
    assert NvidiaGpuDiscovery(nvml=fake_nvml).discover() == []


def test_group_devices_folds_identical_gpus(fake_nvml):
    fake_nvml.devices = [fake_nvml.RECORDED[0]] * 4
    [group] = group_devices(NvidiaGpuDiscovery(nvml=fake_nvml).discover())
    assert (group.kind, group.model, group.count, group.memory_bytes) == ("gpu", "A100", 4, 85899345920)
    assert group.utilisation == pytest.approx(0.37)


@pytest.mark.parametrize(
    "name, model",
    [("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA H100 80GB HBM3", "H100"), ("Tesla V100-SXM2-16GB", "V100"),
     ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("Tesla K80", "K80"), ("NVIDIA Foo 9", "Foo-9")],
)
def test_short_gpu_model(name, model):
    assert short_gpu_model(name) == model


@pytest.mark.parametrize(
    "name, model",
    [("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", "Xeon-8380"), ("AMD EPYC 7763 64-Core Processor", "EPYC-7763"),
     ("AMD EPYC", "AMD-EPYC")],
)
def test_short_cpu_model(name, model):
    assert short_cpu_model(name) == model


def test_npu_smi_table_parsing():
    npus = parse_npu_smi_info((DATA / "npu-smi-info-910b.txt").read_text())
    assert [n.index for n in npus] == [0, 1, 2]
    assert {n.model for n in npus} == {"Ascend910B3"}
    assert npus[0].memory_total_bytes == 65536 * 2**20 and npus[1].memory_used_bytes == 20781 * 2**20
    assert npus[1].utilisation == pytest.approx(0.12)
    assert [n.healthy for n in npus] == [True, True, False]


def test_npu_discovery_without_npu_smi_is_empty():
    assert AscendNpuDiscovery(npu_smi="definitely-not-npu-smi").discover() == []
