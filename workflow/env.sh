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
STAMP="$VENV/.fwbench-requirements"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
  echo "fwbench: installing $(basename "$REQ") into $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" 2> >(grep -v "^WARNING: Location" >&2)
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$ROOT"
