"""The peak MFU is measured against: measured on a CPU, published for GPUs, or given."""

import pytest
import torch

from tui_gpt.core.flops import device_peak, gpu_peak, mfu


@pytest.mark.parametrize(
    "name,precision,tflops",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.0),
        ("NVIDIA H100 PCIe", "bf16", 756.0),
        ("NVIDIA A100-SXM4-40GB", "bf16", 312.0),
        ("NVIDIA A100-SXM4-40GB", "fp32", 19.5),
        ("NVIDIA L4", "bf16", 121.0),
        ("NVIDIA GeForce RTX 4090", "bf16", 165.0),
        ("NVIDIA A10G", "bf16", 70.0),
    ],
)
def test_published_gpu_peaks_by_name(name, precision, tflops):
    assert gpu_peak(name, precision) == tflops * 1e12


def test_unknown_gpu_has_no_peak_and_cpu_peak_is_measured():
    assert gpu_peak("Some Future Accelerator", "bf16") is None
    peak, source = device_peak(torch.device("cpu"), "fp32")
    assert source == "measured" and peak is not None and peak > 1e9
    assert device_peak(torch.device("cpu"), "fp32", 2.5) == (2.5e12, "given")
    assert mfu(6e6, 1000, 1.2e10) == pytest.approx(0.5)
    assert mfu(6e6, 1000, None) is None
