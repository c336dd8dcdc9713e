import pytest
import torch

from kernels import microbench, workloads
from kernels.mlp import FraudMLP, fused_forward
from kernels.scrub import scrub_device, zero_tensors


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_fused_forward_agrees_with_eager(batch):
    torch.manual_seed(0)
    model = FraudMLP(30).eval()
    x = torch.randn(batch, 30)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(fused_forward(model)(x), expected, atol=1e-5, rtol=1e-5)


def test_fused_forward_refuses_layers_it_cannot_fuse():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match="model: fused_forward handles Linear/ReLU stacks; found Tanh"):
        fused_forward(model)


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="in_features"):
        FraudMLP(0)
    with pytest.raises(ValueError, match="hidden"):
        FraudMLP(3, hidden=(8, 0))


def test_cpu_microbenchmarks_measure_something():
    for m in (microbench.matmul("cpu", torch.float32, 128, 2), microbench.memory_bandwidth("cpu", 8, 2),
              workloads.train_step("cpu", batch=256, steps=2), workloads.inference_batch("cpu", batch=256, repeats=2),
              workloads.feature_kernel("cpu", events=5000)):
        assert m.value > 0 and m.device == "cpu" and m.unit
    assert microbench.peak_for("A100", "matmul_fp32") == 19_500.0
    assert microbench.peak_for("AMD-EPYC", "matmul_fp32") is None


def test_host_to_device_and_scrub_refuse_the_cpu_by_name():
    with pytest.raises(ValueError, match="device: host-to-device copy needs an accelerator"):
        microbench.host_to_device("cpu")
    with pytest.raises(ValueError, match="device: scrub_device zeroes accelerator memory"):
        scrub_device("cpu")


def test_zero_tensors_leaves_nothing_behind():
    secrets = [torch.randn(100, 10) + 5, torch.arange(1, 50)]
    report = zero_tensors(secrets)
    assert report.verified and report.bytes_zeroed == 100 * 10 * 4 + 49 * 8
    assert all(int(t.count_nonzero()) == 0 for t in secrets)
    with pytest.raises(ValueError, match="tensors: expected torch tensors"):
        zero_tensors([[1, 2]])


def test_bucket_choice():
    from kernels.mlp import GRAPH_BUCKETS, bucket_for

    assert [bucket_for(b, GRAPH_BUCKETS) for b in (1, 2, 8, 9, 256, 1000, 1024)] == [1, 8, 8, 64, 256, 1024, 1024]
    assert bucket_for(1025, GRAPH_BUCKETS) is None
    with pytest.raises(ValueError, match="x: a batch needs at least one row"):
        bucket_for(0, GRAPH_BUCKETS)


def test_static_bucket_buffers_pad_slice_and_fall_back_like_the_graphs():
    """The graph path's buffer logic, run on the CPU without capture: every batch size, in any
    order, gives the eager answer; padded rows never leak; big batches take the plain chain."""
    from kernels.mlp import BucketedForward

    torch.manual_seed(1)
    model = FraudMLP(30, hidden=(16, 8)).eval()
    calls = []
    plain = fused_forward(model)

    def chain(x):
        calls.append(x.shape[0])
        return plain(x)

    bucketed = BucketedForward(chain, 30, torch.device("cpu"), buckets=(1, 8, 64))
    for batch in (8, 3, 1, 64, 5, 200, 8):
        x = torch.randn(batch, 30)
        with torch.inference_mode():
            torch.testing.assert_close(bucketed(x), model(x), rtol=1e-5, atol=1e-5)
    assert sorted(bucketed._static) == [1, 8, 64]  # one static buffer per bucket used
    assert 200 in calls and 5 not in calls and 3 not in calls  # small batches ran padded, at bucket shapes
    with pytest.raises(ValueError, match=r"x: expected \(rows, 30\)"):
        bucketed(torch.randn(4, 29))


def test_graphs_need_cuda():
    with pytest.raises(ValueError, match="graphs: CUDA graphs need a CUDA device"):
        fused_forward(FraudMLP(4), "cpu", graphs=True)
