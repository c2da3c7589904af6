#!/usr/bin/env bash
# The GPU half of skipfold, checked on a GPU machine with no network: serving on CUDA (the
# service tests with --device cuda, CUDA graphs, fp16 exports against PyTorch's float16),
# `skipfold bench --device cuda`, and training speed and time to 94% on CIFAR-10.
#
#   scripts/gpu-check.sh prepare [DIR]  here, with PyPI and ../shared: what the GPU machine lacks
#                                       (onnxruntime-gpu repacked, the serving wheels for Python
#                                       3.12, CIFAR-10) into DIR/call1 .. DIR/callN, each small
#                                       enough to travel with one call (default DIR: .gpu)
#   scripts/gpu-check.sh stage PART     there, once per part, in consecutive calls: keep PART
#   scripts/gpu-check.sh train-speed    there (after stage call1): WRN-16-4 images/s
#   scripts/gpu-check.sh train-cifar    there (after stage call1): time to 94% on CIFAR-10
#   scripts/gpu-check.sh exports        there (after train-cifar): the models the bench times
#   scripts/gpu-check.sh serve          there (after every part): install, tests, bench
#   scripts/gpu-check.sh all            there, with every part at hand at once: all of it
#
# On a GPU machine that has a network instead: pip install -e '.[all,test]' onnxruntime-gpu
# (onnxruntime-gpu in place of onnxruntime), then INSTALLED=1 scripts/gpu-check.sh all.
#
# Results go to $OUT (default ./gpu-results): summary.md and the logs. Kept between calls (while
# the machine stays up): $STASH (default /tmp/skipfold-gpu). docs/results.md, "On a GPU", has
# what it measured; README.md, "On a GPU", how to carry the parts with the device tool.
set -uo pipefail
cd "$(dirname "$0")/.."
STASH=${STASH:-/tmp/skipfold-gpu}
OUT=${OUT:-$PWD/gpu-results}
PART_MB=${PART_MB:-58}
ORT_GPU=onnxruntime-gpu==1.31.1
PYTHON=${PYTHON:-python3}
# the serving stack and the test tools for Python 3.12 (the GPU machine has torch, onnx,
# numpy, pytest, httpx, grpcio's dependencies ...): versions that pass the suite here
WHEELS=(fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic_core==2.50.5
  pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5 annotated-types==0.8.0
  annotated-doc==0.0.7 typing_extensions==4.16.0 uvicorn==0.55.0 httptools==0.9.0
  python-multipart==0.0.34 fastapi-swagger==0.4.64 grpcio==1.85.3 protobuf==6.33.6
  tritonclient==2.73.0 python-rapidjson==1.25 geventhttpclient==2.6.1 gevent==26.9.0
  greenlet==3.3.2 zope.event==6.2 zope.interface==8.7 brotli==1.2.1 setuptools==84.2.1
  opentelemetry-api==1.45.2 importlib-metadata==10.2.0 zipp==4.1.2 grpcio-tools==1.80.0)
CIFAR=../shared/datasets/cifar10-jpeg.tar.gz

prepare() {
  local dir=${1:-.gpu} work
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  rm -rf "$dir" && mkdir -p "$dir/call1/wheels"
  local platforms=(--python-version 3.12 --implementation cp --only-binary=:all: --no-deps)
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
    manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_5_x86_64 any; do
    platforms+=(--platform "$p")
  done
  python3 -m pip download -q "${platforms[@]}" -d "$dir/call1/wheels" "${WHEELS[@]}" || return 1
  python3 -m pip download -q "${platforms[@]}" -d "$work" "$ORT_GPU" || return 1
  # 255 MB as a wheel; without the TensorRT provider and the C API library (the Python module
  # links ONNX Runtime in), xz-packed: 194 MB
  mkdir "$work/tree" && (cd "$work/tree" && unzip -q "$work"/onnxruntime_gpu-*.whl) || return 1
  rm -rf "$work"/tree/onnxruntime/capi/libonnxruntime_providers_tensorrt.so \
    "$work"/tree/onnxruntime/capi/libonnxruntime.so.* "$work"/tree/onnxruntime/transformers
  echo "packing onnxruntime-gpu with xz (a few minutes)"
  tar -C "$work/tree" -cf - . | xz -9e -T0 >"$work/ort.tar.xz" || return 1
  cp "$CIFAR" "$dir/call1/" || return 1
  # call1 carries the wheels and the data; the rest of its room and the following calls, parts
  local first=$((PART_MB * 1024 * 1024 - $(du -sb "$dir/call1" | cut -f1)))
  ((first > 0)) || { echo "call1's wheels and data fill more than PART_MB=$PART_MB MB"; return 1; }
  head -c "$first" "$work/ort.tar.xz" >"$dir/call1/ort.part00"
  tail -c +$((first + 1)) "$work/ort.tar.xz" | split -b "${PART_MB}M" -d -a 2 --numeric-suffixes=1 - "$work/ort.part"
  local n=1
  for part in "$work"/ort.part*; do
    n=$((n + 1)) && mkdir -p "$dir/call$n" && mv "$part" "$dir/call$n/"
  done
  sha256sum "$work/ort.tar.xz" | cut -d' ' -f1 >"$dir/call$n/ort.sha256"
  du -sh "$dir"/call*
  echo "carry $dir/call1 .. $dir/call$n in consecutive calls: scripts/gpu-check.sh stage $dir/callK"
}

stage() {
  mkdir -p "$STASH/parts" && cp -r "$1"/. "$STASH/parts/" && ls "$STASH/parts"
}

# Everything there runs in the machine's python3 with what it lacks first on PYTHONPATH.
environment() {
  [ -n "${INSTALLED:-}" ] || export PYTHONPATH=$STASH/site PATH=$STASH/site/bin:$PATH
  export SKIPFOLD_CACHE=$STASH/cache PYTHONUNBUFFERED=1
  # ONNX Runtime's CUDA provider finds cuDNN, cuBLAS and cuFFT of the nvidia-* packages torch uses
  local libs
  libs=$($PYTHON -c 'import glob, site; print(":".join(sorted(glob.glob(site.getsitepackages()[0] + "/nvidia/*/lib"))))')
  [ -z "$libs" ] || export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

install_base() {
  [ -f "$STASH/site/.base" ] && return 0
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --target "$STASH/site" \
    "$STASH"/parts/wheels/*.whl && touch "$STASH/site/.base"
}

install_project() {  # the working tree as it is now: rebuilt on every call
  rm -rf "$STASH"/site/skipfold "$STASH"/site/skipfold-*.dist-info
  $PYTHON -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --target "$STASH/site" --upgrade . >"$OUT/install.log" 2>&1
}

install_onnxruntime_gpu() {
  [ -f "$STASH/site/.ort" ] && return 0
  local packed=$STASH/ort.tar.xz
  cat "$STASH"/parts/ort.part* >"$packed"
  if [ "$(sha256sum "$packed" | cut -d' ' -f1)" != "$(cat "$STASH/parts/ort.sha256")" ]; then
    echo "onnxruntime-gpu: the parts do not add up (a part missing?)" && return 1
  fi
  rm -rf "$STASH"/site/onnxruntime "$STASH"/site/onnxruntime-*.dist-info
  tar -C "$STASH/site" -xJf "$packed" && rm "$packed" && touch "$STASH/site/.ort"
}

cifar() {  # the carried archive, else the one in ../shared
  local archive=$STASH/parts/$(basename "$CIFAR")
  [ -f "$archive" ] || archive=$CIFAR
  [ -d "$STASH/cifar/cifar10" ] || { mkdir -p "$STASH/cifar" && tar -xzf "$archive" -C "$STASH/cifar"; }
  echo "$STASH/cifar/cifar10"
}

step() {  # step NAME COMMAND...: runs it, logs it, records its outcome, goes on either way
  local name=$1 started rc
  shift
  started=$(date +%s)
  echo "== $name: $*" | tee -a "$OUT/steps.log"
  "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  echo "| $name | $([ $rc = 0 ] && echo ok || echo "FAILED ($rc)") | $(($(date +%s) - started)) s |" >>"$OUT/summary.md"
  tail -n 3 "$OUT/$name.log"
  return 0
}

train_speed() {  # WRN-16-4 bf16 images/s at batch 64 and 512, eager and compiled
  local data=$1 runs=$STASH/runs
  for batch in 512 64; do
    for compile in "" --compile; do
      local name=speed-$batch${compile:+-compiled}
      rm -rf "${runs:?}/$name"
      # half the training set a epoch: epoch 2 is timed, epoch 1 pays for autotuning and compiling
      $PYTHON -m skipfold train --variant bn --depth 16 --width 4 --epochs 2 --dataset imagefolder \
        --data-dir "$data" --train-limit 25600 --batch-size "$batch" --lr 0.1 --precision bf16 \
        $compile --out "$runs/$name" || return 1
    done
  done
  $PYTHON scripts/gpu_summary.py speed "$runs" >>"$OUT/summary.md"
}

train_cifar() {  # time to 94% on CIFAR-10: WRN-16-4 bf16, batch 512 (COMPILE= for eager)
  local data=$1 runs=$STASH/runs started
  rm -rf "${runs:?}/cifar-94"
  started=$(date +%s)
  $PYTHON -m skipfold train --variant bn --depth 16 --width 4 --epochs "${EPOCHS:-30}" \
    --dataset imagefolder --data-dir "$data" --batch-size 512 --lr "${LR:-0.4}" --nesterov \
    --label-smoothing 0.2 --warmup-epochs 1 --precision bf16 ${COMPILE---compile} --out "$runs/cifar-94" \
    || return 1
  echo "wall: $(($(date +%s) - started)) s (the command, data loading and compilation included)"
  $PYTHON -m skipfold evaluate "$runs/cifar-94" --test-flip
  $PYTHON scripts/gpu_summary.py accuracy "$runs/cifar-94" >>"$OUT/summary.md"
}

exports() {  # WRN-16-4: the CIFAR-10 run (bn) and a SkipInit of its shape, fp32 and fp16
  local runs=$STASH/runs repo=$STASH/repo
  rm -rf "$repo" "${runs:?}/skipinit"
  $PYTHON -m skipfold train --variant skipinit --depth ${SKIPINIT_DEPTH:-16} --width ${SKIPINIT_WIDTH:-4} --epochs 0 --out "$runs/skipinit" || return 1
  for run in "$runs/cifar-94" "$runs/skipinit"; do
    $PYTHON -m skipfold export "$run" --repo "$repo" || return 1
    $PYTHON -m skipfold export "$run" --repo "$repo" --precision fp16 || return 1
  done
  $PYTHON -m skipfold export "$runs/cifar-94" --repo "$repo" --no-fold || return 1
}

service_tests() {
  # several at once where pytest-xdist is installed (the GPU machine's image has it): each
  # worker its own fixtures and ports
  local parallel=()
  $PYTHON -c "import xdist" 2>/dev/null && parallel=(-n "${WORKERS:-8}")
  $PYTHON -m pytest -q -p no:cacheprovider "${parallel[@]}" --device cuda tests/service \
    tests/export/test_fp16_cuda.py --deselect tests/service/test_page.py "$@"
}

bench() {
  local repo=$STASH/repo port=8600 pid rc device=${DEVICE:-cuda} graphs=--cuda-graphs
  [ "$device" = cuda ] || graphs=""
  $PYTHON -m skipfold serve --repo "$repo" --device "$device" $graphs --port $port --grpc-port 0 \
    --models cifar-94 &
  pid=$!
  $PYTHON -c "import time, urllib.request as u
for _ in range(240):
    try:
        u.urlopen('http://127.0.0.1:$port/v2/health/ready'); break
    except OSError:
        time.sleep(0.5)"
  $PYTHON -m skipfold bench --repo "$repo" --device "$device" $graphs --levels all \
    --batch-sizes 1,8,64 --duration "${DURATION:-4}" --url "http://127.0.0.1:$port" \
    --http-model cifar-94 --concurrency 1,8,32 --out "$STASH/bench"
  rc=$?
  kill "$pid"; wait "$pid"
  cp "$STASH/bench/results.md" "$OUT/bench.md"; cp "$STASH/bench/results.json" "$OUT/bench.json"
  return $rc
}

finish() {  # finish STEP: the step's logs into logs-STEP.tar.gz (the device tool brings 8 files)
  ! command -v nvidia-smi >/dev/null || nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$OUT/summary.md" 2>&1
  (cd "$OUT" && tar -czf "logs-$1.tar.gz" ./*.log 2>/dev/null && rm -f ./*.log)
  cat "$OUT/summary.md"
}

begin() {
  mkdir -p "$OUT" "$STASH"
  echo "| step | outcome | time |" >>"$OUT/summary.md" && echo "|---|---|---|" >>"$OUT/summary.md"
  environment
  [ -n "${INSTALLED:-}" ] && return 0  # a GPU machine with skipfold[all,test] and onnxruntime-gpu
  step install-base install_base
  step install-project install_project
}

case ${1:-} in
prepare) prepare "${2:-.gpu}" ;;
stage) [ -d "${2:-}" ] || { echo "stage PART: PART is a folder made by prepare"; exit 2; }; stage "$2" ;;
train-speed) begin; step train-speed train_speed "$(cifar)"; finish train-speed ;;
train-cifar) begin; step train-cifar train_cifar "$(cifar)"; finish train-cifar ;;
exports) begin; step exports exports; finish exports ;;
serve)
  begin; [ -n "${INSTALLED:-}" ] || step install-onnxruntime-gpu install_onnxruntime_gpu
  step service-tests service_tests -m 'not hostile'
  step service-tests-graphs service_tests -m 'not hostile and not e2e' --cuda-graphs
  step bench bench; finish serve ;;
all) for s in train-speed train-cifar exports serve; do bash scripts/gpu-check.sh "$s"; done ;;
*) sed -n 2,21p "$0" && exit 2 ;;
esac
