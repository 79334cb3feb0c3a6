#!/usr/bin/env bash
# Build whisper.cpp's whisper-cli for this machine.
#
#   client/whisper/build.sh [--backend cpu|cuda|vulkan|openvino|metal|hip] [--source auto|git|pypi|DIR]
#                           [--no-deps] [--jobs N] [--force]
#
# Result: client/whisper/whisper.cpp/build/bin/whisper-cli (a self-contained static build).
# A second run with the same version and backend does nothing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=v1.8.5
PYPI_SDIST="pywhispercpp==1.5.1"          # its whisper.cpp/ folder is upstream v1.8.5
REPO_URL=https://github.com/ggml-org/whisper.cpp
TREE="$HERE/whisper.cpp"
BIN="$TREE/build/bin/whisper-cli"
STAMP="$TREE/build/.batch-stt-stamp"

backend="" source="auto" deps=1 force=0
jobs=$( (nproc || sysctl -n hw.ncpu) 2>/dev/null || echo 2)

die() { echo "build.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend=${2:?}; shift 2 ;;
    --backend=*) backend=${1#*=}; shift ;;
    --source) source=${2:?}; shift 2 ;;
    --source=*) source=${1#*=}; shift ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --no-deps) deps=0; shift ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    cpu|cuda|vulkan|openvino|metal|hip) backend=$1; shift ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [ -z "$backend" ]; then
  if [ -t 0 ]; then
    read -r -p "Backend [cpu/cuda/vulkan/openvino/metal/hip] (cpu): " backend
  fi
  backend=${backend:-cpu}
fi

case "$backend" in
  cpu)      flags=(-DGGML_METAL=OFF) ;;
  cuda)     flags=(-DGGML_CUDA=1) ;;
  vulkan)   flags=(-DGGML_VULKAN=1) ;;
  openvino) flags=(-DWHISPER_OPENVINO=1) ;;
  metal)    flags=(-DGGML_METAL=ON -DGGML_METAL_EMBED_LIBRARY=ON) ;;
  hip)      flags=(-DGGML_HIP=1) ;;
  *) die "unknown backend '$backend': choose cpu, cuda, vulkan, openvino, metal or hip" ;;
esac
[ "$(uname -s)" = Darwin ] && [ "$backend" = cpu ] && flags=(-DGGML_METAL=OFF)

if [ "$force" = 0 ] && [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION $backend" ]; then
  say "whisper-cli $VERSION ($backend) is already built: $BIN"
  exit 0
fi

# --- build dependencies, through the platform's package manager ------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
install_deps() {
  local need=()
  command -v cmake >/dev/null || need+=(cmake)
  command -v c++ >/dev/null || need+=(c++)
  command -v make >/dev/null || need+=(make)
  command -v git >/dev/null || need+=(git)
  [ ${#need[@]} = 0 ] && return 0
  say "installing build tools (missing: ${need[*]})"
  if command -v apt-get >/dev/null; then
    as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq build-essential cmake git
  elif command -v dnf >/dev/null; then
    as_root dnf install -y gcc-c++ make cmake git
  elif command -v pacman >/dev/null; then
    as_root pacman -S --needed --noconfirm base-devel cmake git
  elif command -v brew >/dev/null; then
    brew install cmake git
  else
    die "no supported package manager (apt, dnf, pacman, brew): install ${need[*]} yourself"
  fi
}
[ "$deps" = 1 ] && install_deps
command -v cmake >/dev/null || die "cmake is missing (install it, or drop --no-deps)"
command -v c++ >/dev/null || die "a C++ compiler is missing (install g++ or clang, or drop --no-deps)"

# --- each backend's toolkit must really be there: no silent fallback to CPU -----------------
check_toolkit() {
  case "$backend" in
    cuda)
      command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
        die "backend cuda needs the CUDA toolkit (nvcc not found). Fedora: 'dnf install cuda-toolkit' from NVIDIA's repo; Debian/Ubuntu: 'apt install nvidia-cuda-toolkit'."
      command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH" ;;
    vulkan)
      command -v glslc >/dev/null ||
        die "backend vulkan needs glslc (Debian/Ubuntu: 'apt install glslc', Fedora: 'dnf install glslc', Arch: 'pacman -S shaderc')."
      local hdr ver
      hdr=$(ls /usr/include/vulkan/vulkan_core.h /usr/local/include/vulkan/vulkan_core.h "${VULKAN_SDK:-/nonexistent}/include/vulkan/vulkan_core.h" 2>/dev/null | head -1 || true)
      [ -n "$hdr" ] || die "backend vulkan needs the Vulkan headers (Debian/Ubuntu: 'apt install libvulkan-dev', Fedora: 'dnf install vulkan-headers vulkan-loader-devel')."
      ver=$(sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\).*/\1/p' "$hdr")
      [ "${ver:-0}" -ge 255 ] ||
        die "backend vulkan needs Vulkan headers >= 1.3.255; $hdr is 1.3.${ver}. Install the LunarG Vulkan SDK and set VULKAN_SDK, or use a newer distribution." ;;
    openvino)
      [ -n "${OpenVINO_DIR:-}${INTEL_OPENVINO_DIR:-}" ] ||
        die "backend openvino needs the OpenVINO toolkit: install it and 'source /opt/intel/openvino/setupvars.sh' first." ;;
    metal)
      [ "$(uname -s)" = Darwin ] || die "backend metal is only for macOS." ;;
    hip)
      command -v hipcc >/dev/null || [ -x /opt/rocm/bin/hipcc ] || die "backend hip needs ROCm (hipcc not found)." ;;
  esac
}
check_toolkit

# --- source --------------------------------------------------------------------------------
have_tree() { [ -f "$TREE/CMakeLists.txt" ] && [ -f "$TREE/examples/cli/cli.cpp" ]; }
from_git() {
  command -v git >/dev/null || return 1
  # A network that drops packets silently would hang the clone: ask first, briefly.
  timeout 20 git ls-remote --tags "$REPO_URL" "$VERSION" >/dev/null 2>&1 || return 1
  say "cloning whisper.cpp $VERSION"
  rm -rf "$TREE.tmp"
  timeout 300 git clone -q --depth 1 --branch "$VERSION" "$REPO_URL" "$TREE.tmp" 2>/dev/null || { rm -rf "$TREE.tmp"; return 1; }
  rm -rf "$TREE"; mv "$TREE.tmp" "$TREE"
}
from_pypi() {
  say "taking the whisper.cpp $VERSION tree from PyPI's $PYPI_SDIST sdist"
  local py tmp sdist
  py=$(command -v python3 || command -v python) || die "python3 is needed for --source pypi"
  tmp=$(mktemp -d)
  "$py" -m pip download -q --no-deps --no-binary pywhispercpp "$PYPI_SDIST" -d "$tmp" || die "pip download of $PYPI_SDIST failed"
  sdist=$(ls "$tmp"/pywhispercpp-*.tar.gz)
  tar -xzf "$sdist" -C "$tmp"
  rm -rf "$TREE"; mv "$tmp"/pywhispercpp-*/whisper.cpp "$TREE"; rm -rf "$tmp"
}
from_dir() {
  local dir=$1
  [ -f "$dir/CMakeLists.txt" ] && [ -f "$dir/examples/cli/cli.cpp" ] || die "$dir is not a whisper.cpp source tree"
  if [ "$(cd "$dir" && pwd)" != "$TREE" ]; then
    say "copying whisper.cpp tree from $dir"
    rm -rf "$TREE"; mkdir -p "$TREE"; (cd "$dir" && tar --exclude=./build -cf - .) | (cd "$TREE" && tar -xf -)
  fi
}
tree_version() { sed -n 's/^project("whisper.cpp" VERSION \([0-9.]*\)).*/v\1/p' "$TREE/CMakeLists.txt" 2>/dev/null; }

if have_tree && [ "$(tree_version)" = "$VERSION" ] && { [ "$source" = auto ] || [ "$source" = git ] || [ "$source" = pypi ]; }; then
  say "using the existing $VERSION tree in $TREE"
else
  case "$source" in
    auto) from_git || { say "GitHub unreachable; falling back to PyPI"; from_pypi; } ;;
    git)  from_git || die "could not clone $REPO_URL at $VERSION" ;;
    pypi) from_pypi ;;
    *)    from_dir "$source" ;;
  esac
fi
have_tree || die "no whisper.cpp source tree in $TREE"
[ "$(tree_version)" = "$VERSION" ] || echo "build.sh: warning: the tree is $(tree_version), batch-stt is tested with $VERSION" >&2

# --- build ---------------------------------------------------------------------------------
say "building whisper-cli ($backend) with $jobs jobs"
log="$TREE/build.log"
mkdir -p "$TREE/build"
{ cmake -S "$TREE" -B "$TREE/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_SERVER=OFF -DWHISPER_SDL2=OFF "${flags[@]}" &&
  cmake --build "$TREE/build" -j "$jobs" --target whisper-cli; } >"$log" 2>&1 ||
  { tail -n 40 "$log" >&2; die "the build failed; full log: $log"; }
[ -x "$BIN" ] || die "the build finished but $BIN is missing"
"$BIN" --help >/dev/null 2>&1 || true
echo "$VERSION $backend" > "$STAMP"
say "done: $BIN"
