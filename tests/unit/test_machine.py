"""setup's choices: the backend a machine has the toolkit for, and the largest model expected at
real time or faster within its memory."""

from __future__ import annotations

from client.machine import Machine, pick_backend, pick_model


def machine(**kw) -> Machine:
    base = dict(system="Linux", arch="x86_64", cpus=2, ram_gb=8.0, nvidia=False, nvcc=False, vulkan=False, vram_gb=None)
    return Machine(**{**base, **kw})


def test_backends():
    assert pick_backend(machine())[0] == "cpu"
    assert pick_backend(machine(nvcc=True)) == ("cpu", "the CUDA toolkit but no NVIDIA GPU, so the CPU")
    assert pick_backend(machine(nvcc=True, nvidia=True))[0] == "cuda"
    assert pick_backend(machine(vulkan=True))[0] == "vulkan"
    assert pick_backend(machine(system="Darwin", arch="arm64"))[0] == "metal"


def test_models():
    assert pick_model(machine(cpus=2), "cpu")[0] == "small"  # tiny ~11x: small ~3x on 2 cores
    assert pick_model(machine(cpus=1, ram_gb=2.0), "cpu")[0] == "base"
    assert pick_model(machine(cpus=1, ram_gb=0.5), "cpu")[0] == "tiny"  # too little memory for more
    assert pick_model(machine(cpus=16), "cpu")[0] == "large-v3-turbo"
    assert pick_model(machine(cpus=8, vram_gb=2.0), "cuda")[0] == "small"  # a small GPU's memory decides
    assert pick_model(machine(cpus=2), "cpu", english_only=True)[0] == "small.en"
