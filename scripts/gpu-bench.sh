#!/usr/bin/env bash
# The GPU benchmark as one prepared script, for a GPU machine that has
# torch (CUDA), transformers and NVIDIA's driver but no internet and no Rust
# (docs/gpu.md). Run from the repository root:
#
#   scripts/gpu-bench.sh bundle    # here, with internet: fills target/gpu-bundle/
#   scripts/gpu-bench.sh run       # there: writes the large fixtures, runs the benchmark
#
# `bundle` builds toxcli with wgpu, cuda, kernel fusion and f16-experiment
# (f16 is not offered in other builds: it drifts over 1e-3, docs/gpu.md; the
# benchmark measures it), a second toxcli with `vulkan` as well (SPIR-V
# kernels; its own target folder, target/spirv: another build of burn's
# graph, about half an hour on 2 cores), and xtask, in release, downloads the
# detoxify wheel (no dependencies: the GPU machine has torch and
# transformers) and the Vulkan loader's .deb, and copies them to
# target/gpu-bundle/ (stripped, xz-compressed binaries: the device tool
# carries 64 MiB at most, the repository's tracked files included; the step
# fails if the two together are over). `run` leaves the bundle as it is (it may arrive
# read-only) and works in target/gpu-bin/: it unpacks the binaries, adds
# what is missing (the Vulkan loader from its .deb, NVIDIA's Vulkan ICD file
# if the driver's is not there, detoxify unzipped onto PYTHONPATH beside the
# system's torch: no venv, no pip), writes fixtures/large/ with
# fixtures/generate.py --large, and runs `xtask bench --device cuda,wgpu`. Its
# report, stderr included, goes to stdout and to target/gpu-bin/report.txt.
#
# Environment: PYTHON (default python3), TEXTS (20000), BATCH (64),
# REPEATS (2), DEVICE (cuda,wgpu: toxscore's devices, each a contender),
# PRECISION (f32,f16), TORCH_DEVICE (Detoxify's,
# default cuda), SPIRV (1: race the SPIR-V build; 0 leaves it out, as on
# lavapipe, which it crashes), DEADLINE (seconds from the script's start:
# past it no run starts, the one under way is stopped, and the report shows
# what finished; for a machine lent by the minute). A contender that fails
# is reported and the others go on. A smoke run of the whole script on a
# machine without a GPU, on lavapipe and torch's CPU:
#   DEVICE=wgpu TEXTS=32 REPEATS=1 BATCH=16 SPIRV=0 TORCH_DEVICE=cpu PYTHON=$PYTHON scripts/gpu-bench.sh run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bundle=target/gpu-bundle
python=${PYTHON:-python3}

case "${1:-}" in
bundle)
    # Fresh: nothing of an earlier bundle (or of an earlier run) travels.
    rm -rf "$bundle"
    mkdir -p "$bundle/debs"
    cargo build --release -p toxcli --features toxcli/wgpu,toxcli/cuda,toxcli/fusion,toxcli/f16-experiment
    cargo build --release -p xtask
    CARGO_TARGET_DIR=target/spirv cargo build --release -p toxcli \
        --features toxcli/wgpu,toxcli/vulkan,toxcli/fusion,toxcli/f16-experiment
    cp target/release/toxcli target/release/xtask "$bundle/"
    cp target/spirv/release/toxcli "$bundle/toxcli-spirv"
    # Symbols off and xz: the toxcli with wgpu, cuda and fusion is 83 MB
    # stripped, 24 MB gzipped, 14.6 MB in xz -9e; the SPIR-V one 94, 26 and
    # 15.7 MB (session 8). The device tool carries 64 MiB with the tracked
    # files (28 MB): gzip's 50 MB did not fit, xz's 31 MB does.
    strip "$bundle/toxcli" "$bundle/toxcli-spirv" "$bundle/xtask"
    xz -9e --threads=0 --force "$bundle/toxcli" "$bundle/toxcli-spirv" "$bundle/xtask"
    "$python" -m pip download --quiet --no-deps --dest "$bundle" detoxify
    # The Vulkan loader, and glvnd's dispatch library that NVIDIA's Vulkan
    # driver (libGLX_nvidia) links against: a CUDA image may lack both.
    (cd "$bundle/debs" && apt-get download libvulkan1 libglvnd0)
    ls -l "$bundle" "$bundle/debs"
    # What the device tool sends: tracked and untracked-not-ignored files,
    # and the bundle it carries.
    travel=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null
        find "$bundle" -type f -printf '%s\n') | awk '{ total += $1 } END { print total }')
    echo "gpu-bench: the device tool would send $((travel / 1048576)) MiB (at most 64)"
    if ((travel > 64 * 1048576)); then
        echo "gpu-bench: over the device tool's 64 MiB: the run would be refused" >&2
        exit 1
    fi
    ;;
run)
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    # The bundle may arrive read-only: everything is written beside it.
    bin=target/gpu-bin
    mkdir -p "$bin"
    # xz if the machine has it, else Python's lzma (in every CPython).
    for name in toxcli toxcli-spirv xtask; do
        [[ -f "$bundle/$name.xz" ]] || continue
        if command -v xz >/dev/null; then
            xz -dc "$bundle/$name.xz" >"$bin/$name"
        else
            "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
                "$bundle/$name.xz" >"$bin/$name"
        fi
        chmod +x "$bin/$name"
    done
    # The Vulkan loader and glvnd's dispatch library, unless the system has
    # them (unpacked beside the bundle, never over /).
    if ! ldconfig -p | grep -q 'libvulkan\.so\.1' || ! ldconfig -p | grep -q 'libGLdispatch\.so\.0'; then
        for deb in "$bundle"/debs/*.deb; do dpkg-deb -x "$deb" "$bin/root"; done
        export LD_LIBRARY_PATH="$PWD/$bin/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    # The driver's own libraries (libcuda, libGLX_nvidia), where a container
    # mounts them outside the linker's path (/usr/local/nvidia here).
    for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
        if [[ -e "$dir/libcuda.so.1" || -e "$dir/libGLX_nvidia.so.0" ]] &&
            ! { ldconfig -p | grep -q 'libcuda\.so\.1' && ldconfig -p | grep -q 'libGLX_nvidia\.so\.0'; }; then
            export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir"
        fi
    done
    # NVIDIA's Vulkan driver is its GLX library, named by an ICD file: the
    # driver's own (in the loader's folders, or beside a mounted driver),
    # else one written here. (Not on a machine without NVIDIA's driver: the
    # smoke run uses lavapipe's ICD.)
    if command -v nvidia-smi >/dev/null &&
        ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
        icd=$(ls /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -n 1 || true)
        if [[ -z "$icd" ]]; then
            icd="$PWD/$bin/nvidia_icd.json"
            cat >"$icd" <<'JSON'
{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3"}}
JSON
        fi
        # Older loaders read the first name, newer ones the second.
        export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"
    fi
    # toxscore's CUDA build compiles its kernels as CUDA C++ with NVRTC
    # (docs/gpu.md): it needs libnvrtc and the CUDA headers, from the
    # toolkit (CUDA_PATH, /usr/local/cuda) or else from torch's nvidia-*
    # wheels.
    nvidia=$("$python" -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
    if [[ -z "${CUDA_PATH:-}" && ! -d /usr/local/cuda && ! -d /opt/cuda && ! -x /usr/bin/nvcc &&
        -n "$nvidia" && -d "$nvidia/cuda_runtime/include" ]]; then
        export CUDA_PATH="$nvidia/cuda_runtime"
    fi
    if ! ldconfig -p | grep -q 'libnvrtc\.so'; then
        for dir in "${CUDA_PATH:-/usr/local/cuda}/lib64" "${nvidia:-/nonexistent}/cuda_nvrtc/lib"; do
            [[ -d "$dir" ]] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        done
    fi
    echo "gpu-bench: CUDA_PATH=${CUDA_PATH:-unset (/usr/local/cuda if present)} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" \
        "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-unset}"
    # detoxify beside the system's torch and transformers: a wheel is a zip,
    # and detoxify is pure Python (a venv would need ensurepip, pip the index).
    if ! "$python" -c 'import detoxify' 2>/dev/null; then
        rm -rf "$bin/site"
        "$python" -m zipfile -e "$bundle"/detoxify-*.whl "$bin/site"
        export PYTHONPATH="$PWD/$bin/site${PYTHONPATH:+:$PYTHONPATH}"
        "$python" -c 'import detoxify'
    fi
    if [[ ! -f fixtures/large/original/checkpoint.ckpt ]]; then
        HF_HUB_OFFLINE=1 "$python" fixtures/generate.py --large
    fi
    # The SPIR-V build races the WGSL one on wgpu (docs/gpu.md).
    extra=()
    if [[ ",${DEVICE:-cuda,wgpu}," == *,wgpu* && "${SPIRV:-1}" == 1 ]]; then
        extra+=(--toxcli-spirv "$bin/toxcli-spirv")
    fi
    if [[ -n "${TORCH_DEVICE:-}" ]]; then
        extra+=(--torch-device "$TORCH_DEVICE")
    fi
    # The deadline counts from the script's start (SECONDS): the set-up and
    # the fixtures came out of it.
    if [[ -n "${DEADLINE:-}" ]]; then
        left=$((DEADLINE - SECONDS))
        extra+=(--deadline "$((left > 0 ? left : 1))")
    fi
    "$bin/xtask" bench --device "${DEVICE:-cuda,wgpu}" --toxcli "$bin/toxcli" "${extra[@]}" --python "$python" \
        --texts "${TEXTS:-20000}" --batch-size "${BATCH:-64}" --repeats "${REPEATS:-2}" \
        --precision "${PRECISION:-f32,f16}" 2>&1 | tee "$bin/report.txt"
    ;;
*)
    echo "usage: scripts/gpu-bench.sh bundle|run" >&2
    exit 2
    ;;
esac
