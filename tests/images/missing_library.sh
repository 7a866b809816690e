#!/usr/bin/env bash
# The OCR image's build must fail when the image lacks a library the engine loads: its
# prepare step runs the function's own binary inside the image (functions/Dockerfile). This
# builds the OCR target on the local base with libstdc++ removed (ONNX Runtime needs it;
# Lambda's al2023 base lacks it until the Dockerfile adds it), and expects the build to
# fail naming the library. Run after scripts/images, which staged target/images/.
#
#   tests/images/missing_library.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
ensure_docker
machine="$(uname -m)"
ensure_local_base "$machine"
broken="docusnap-base:no-libstdcxx-$machine"
log "making $broken: $BASE_IMAGE without libstdc++"
printf 'FROM %s\nRUN rm -f /usr/lib/%s-linux-gnu/libstdc++.so.6*\n' "$BASE_IMAGE" "$machine" \
    | docker build --quiet -t "$broken" - > /dev/null
out="$LOCAL/logs/image-missing-library.log"
if docker build --no-cache --force-rm -f functions/Dockerfile --target ocr --build-arg FUNCTION=ocr --build-arg "BASE=$broken" \
    -t docusnap-ocr:missing-library . > "$out" 2>&1; then
    log "FAIL: the OCR image built without libstdc++ (see $out)"
    docker rmi -f docusnap-ocr:missing-library > /dev/null 2>&1 || true
    exit 1
fi
if ! grep -q 'libstdc++.so.6' "$out"; then
    log "FAIL: the build failed, but not for the missing library:"
    tail -n 20 "$out" >&2
    exit 1
fi
# The failed build (its failed step's container removed: --force-rm) leaves its last
# step's image and its staging stage's untagged, about 220 MB a run. Only an untagged
# image is removed (the last step may be a tagged base).
last="$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -o -- '---> [0-9a-f]\{12\}' | tail -n 1 | cut -d' ' -f2 || true)"
if [[ -n "$last" && "$(docker image inspect --format '{{len .RepoTags}}' "$last" 2>/dev/null)" == 0 ]]; then
    docker rmi "$last" > /dev/null 2>&1 || true
fi
prune_staging_images
log "ok: without libstdc++ the OCR image does not build: $(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -m1 -o 'dlopen failed: [^"]*libstdc++.so.6[^"]*' | head -c 300)"
docker rmi -f "$broken" > /dev/null 2>&1 || true
