# Build whisper.cpp's whisper-cli on Windows (untested in CI: there is no Windows runner).
#
#   powershell -ExecutionPolicy Bypass -File client\whisper\build-windows.ps1 [-Backend cpu|cuda|vulkan] [-Source DIR]
#
# Needs: Git, CMake and "Visual Studio Build Tools" (Desktop C++), e.g.
#   winget install Git.Git Kitware.CMake Microsoft.VisualStudio.2022.BuildTools
# CUDA: the NVIDIA CUDA Toolkit. Vulkan: the LunarG Vulkan SDK (sets VULKAN_SDK).
# Result: client\whisper\whisper.cpp\build\bin\Release\whisper-cli.exe  (set WHISPER_CLI to it)
param(
    [ValidateSet("cpu", "cuda", "vulkan")] [string]$Backend = "cpu",
    [string]$Source = ""
)
$ErrorActionPreference = "Stop"
$Version = "v1.8.5"
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
$Tree = Join-Path $Here "whisper.cpp"
$Bin = Join-Path $Tree "build\bin\Release\whisper-cli.exe"
$Stamp = Join-Path $Tree "build\.batch-stt-stamp"

foreach ($tool in "git", "cmake") {
    if (-not (Get-Command $tool -ErrorAction SilentlyContinue)) { throw "$tool not found: install it (see the header of this script)" }
}
if ((Test-Path $Bin) -and (Test-Path $Stamp) -and ((Get-Content $Stamp) -eq "$Version $Backend")) {
    Write-Host "whisper-cli $Version ($Backend) is already built: $Bin"; exit 0
}
switch ($Backend) {
    "cuda"   { if (-not (Get-Command nvcc -ErrorAction SilentlyContinue)) { throw "backend cuda needs the CUDA Toolkit (nvcc not found)" }; $flags = @("-DGGML_CUDA=1") }
    "vulkan" { if (-not $env:VULKAN_SDK) { throw "backend vulkan needs the LunarG Vulkan SDK (VULKAN_SDK is not set)" }; $flags = @("-DGGML_VULKAN=1") }
    default  { $flags = @() }
}
if ($Source) {
    Copy-Item -Recurse -Force $Source $Tree
} elseif (-not (Test-Path (Join-Path $Tree "CMakeLists.txt"))) {
    git clone --depth 1 --branch $Version https://github.com/ggml-org/whisper.cpp $Tree
}
cmake -S $Tree -B (Join-Path $Tree "build") -DBUILD_SHARED_LIBS=OFF -DWHISPER_BUILD_TESTS=OFF -DWHISPER_SDL2=OFF @flags
cmake --build (Join-Path $Tree "build") --config Release -j --target whisper-cli
if (-not (Test-Path $Bin)) { throw "build finished but $Bin is missing" }
Set-Content -Path $Stamp -Value "$Version $Backend"
Write-Host "done: $Bin"
