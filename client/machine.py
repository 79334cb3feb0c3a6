"""What this machine can run, for `stt-client setup`: the best whisper.cpp backend it has the
toolkit for, and the largest model it runs at real time or faster within its memory.

The model choice is an estimate, not a measurement (setup's benchmark measures the model it
picked): whisper tiny.en runs about 11x real time on 2 CPU cores (shared/README.md), speed grows
with cores, and each larger model costs a known factor more (whisper.cpp's bench figures).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# name -> (relative cost to tiny, memory it needs in GB); largest first.
MODELS = {
    "large-v3-turbo": (8.0, 3.2),
    "medium": (12.0, 2.6),
    "small": (4.0, 1.0),
    "base": (1.8, 0.5),
    "tiny": (1.0, 0.4),
}
TINY_RTF_PER_CORE = 5.5  # tiny on the CPU: about 11x real time with 2 cores
GPU_SPEEDUP = 8.0  # a discrete GPU against the CPU, roughly
HEADROOM = 1.5  # pick a model expected at 1.5x real time, so it is surely >= 1x


@dataclass(frozen=True)
class Machine:
    system: str  # Linux, Darwin, ...
    arch: str
    cpus: int
    ram_gb: float
    nvidia: bool  # an NVIDIA GPU and its driver (/dev/nvidia0)
    nvcc: bool
    vulkan: bool
    vram_gb: Optional[float]  # an NVIDIA GPU's memory, when nvidia-smi tells it

    @classmethod
    def inspect(cls) -> Machine:
        return cls(
            platform.system(),
            platform.machine(),
            os.cpu_count() or 1,
            _ram_gb(),
            Path("/dev/nvidia0").exists() or _vram_gb() is not None,
            bool(shutil.which("nvcc") or Path("/usr/local/cuda/bin/nvcc").exists()),
            bool(shutil.which("glslc") and _vulkan_headers()),
            _vram_gb(),
        )


def pick_backend(m: Machine) -> tuple[str, str]:
    """(backend, why)."""
    if m.system == "Darwin" and m.arch == "arm64":
        return "metal", "Apple Silicon: Metal"
    if m.nvidia and m.nvcc:
        return "cuda", "an NVIDIA GPU with the CUDA toolkit (nvcc)"
    if m.vulkan:
        return "vulkan", "the Vulkan SDK (glslc and headers)"
    found = "the CUDA toolkit but no NVIDIA GPU" if m.nvcc else "no GPU toolkit (nvcc, Vulkan SDK)"
    return "cpu", f"{found}, so the CPU"


def pick_model(m: Machine, backend: str, english_only: bool = False) -> tuple[str, str]:
    """(model name for download-model.sh, why): the largest expected at >= HEADROOM x real time that
    fits in memory (half the RAM; on a GPU its memory, when known)."""
    gpu = backend != "cpu"
    speed = TINY_RTF_PER_CORE * m.cpus * (GPU_SPEEDUP if gpu else 1.0)
    memory = m.vram_gb if gpu and m.vram_gb else m.ram_gb / 2
    for name, (cost, need) in MODELS.items():
        if speed / cost >= HEADROOM and need <= memory:
            suffix = ".en" if english_only and name in ("tiny", "base", "small", "medium") else ""
            why = f"expected about {speed / cost:.0f}x real time, needs {need:.1f} of {memory:.1f} GB"
            return name + suffix, why
    return "tiny", "the smallest model (nothing larger is expected to keep up)"


def _ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, timeout=5).stdout
        return int(out.strip()) / 1024**3
    except (OSError, ValueError, subprocess.SubprocessError):
        return 4.0


def _vram_gb() -> Optional[float]:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout  # fmt: skip
        return max(int(x) for x in out.split()) / 1024
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _vulkan_headers() -> bool:
    sdk = os.path.join(os.environ.get("VULKAN_SDK", "/nonexistent"), "include")
    roots = ["/usr/include", "/usr/local/include", sdk]
    return any(Path(r, "vulkan", "vulkan_core.h").is_file() for r in roots)
