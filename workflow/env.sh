# Sourced by the two commands: make (or reuse) the virtual environment with the pinned
# requirements. FWBENCH_GPU=1 selects the CUDA route (requirements-gpu.txt, .venv-gpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${FWBENCH_GPU:-0}" == "1" ]]; then
  REQ="$ROOT/requirements-gpu.txt"; VENV="${FWBENCH_VENV:-$ROOT/.venv-gpu}"
else
  REQ="$ROOT/requirements.txt"; VENV="${FWBENCH_VENV:-$ROOT/.venv}"
fi
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "fwbench needs Python 3.11; found $("$PYTHON" --version). Set PYTHON=/path/to/python3.11." >&2
  exit 2
fi
UV_VERSION=0.13.9
STAMP="$VENV/.fwbench-requirements"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
  echo "fwbench: installing $(basename "$REQ") into $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  # uv installs the same pins in about 30 s where pip takes about 8 min (measured on the 2-core
  # machine); pip is the fallback. uv reads no pip configuration: pip's find-links (where the CPU
  # torch wheel lies) are passed on, so both routes resolve torch alike.
  FIND=()
  for d in ${PIP_FIND_LINKS:-} $("$VENV/bin/python" -m pip config get global.find-links 2>/dev/null || true); do
    FIND+=(--find-links "$d")
  done
  if ! { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>/dev/null \
      && "$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" "${FIND[@]}" -r "$REQ"; }; then
    echo "fwbench: uv could not install $(basename "$REQ"); installing with pip" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" 2> >(grep -v "^WARNING: Location" >&2)
  fi
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$ROOT"
