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
