# Sourced by the two commands: make (or bring up to date) the virtual environment from the locks
# and install the project (editable) so `fwbench` is on PATH. FWBENCH_GPU=1 selects the CUDA route
# (requirements-gpu.lock, .venv-gpu); FWBENCH_DEV=1 (the test command) adds requirements-dev.lock.
# The venv holds exactly the locks' packages (plus pip, uv and the project): anything else is removed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${FWBENCH_GPU:-0}" == "1" ]]; then
  LOCKS=("$ROOT/requirements-gpu.lock"); VENV="${FWBENCH_VENV:-$ROOT/.venv-gpu}"
else
  LOCKS=("$ROOT/requirements.lock"); VENV="${FWBENCH_VENV:-$ROOT/.venv}"
fi
[[ "${FWBENCH_DEV:-0}" == "1" ]] && LOCKS+=("$ROOT/requirements-dev.lock")
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "fwbench: needs Python 3.11; found $("$PYTHON" --version). Set PYTHON=/path/to/python3.11." >&2
  exit 2
fi
UV_VERSION=0.13.9
# The locks to install: none when the venv's stamp (.fwbench-lock.json) names every needed lock as it
# is now; else the needed ones plus those installed before (workflow/lib/lockfile.py, to_install).
TODO="$(PYTHONPATH="$ROOT" "$PYTHON" -m workflow.lib.lockfile plan "$VENV" "${LOCKS[@]}")"
if [[ -n "$TODO" ]]; then
  mapfile -t LOCKS <<< "$TODO"
  echo "fwbench: installing $(for l in "${LOCKS[@]}"; do basename "$l"; done | paste -sd+) into $VENV" >&2
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  rm -f "$VENV/.fwbench-lock.json"
  REQS=()
  for lock in "${LOCKS[@]}"; do REQS+=(-r "$lock"); done
  # uv installs the lock in about 30 s where pip takes about 8 min (measured on the 2-core machine);
  # pip is the fallback. Both compile the bytecode at install (uv only when asked): without it every
  # process compiles what it imports from source, again and again where PYTHONDONTWRITEBYTECODE is
  # set (`import mlflow, torch, tensorflow`: 28 s of CPU against 10 s, AMD EPYC machine). uv reads no pip configuration: pip's find-links (where the CPU torch wheel
  # lies) are passed on, so both routes find the locked torch build.
  FIND=()
  for d in ${PIP_FIND_LINKS:-} $("$VENV/bin/python" -m pip config get global.find-links 2>/dev/null || true); do
    FIND+=(--find-links "$d")
  done
  if "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>/dev/null \
      && "$VENV/bin/python" -m uv pip install --quiet --compile-bytecode --python "$VENV/bin/python" --require-hashes "${FIND[@]}" "${REQS[@]}"; then
    INSTALL=("$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python")
    UNINSTALL=("$VENV/bin/python" -m uv pip uninstall --quiet --python "$VENV/bin/python")
  else
    echo "fwbench: uv could not install the lock; installing with pip" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes "${REQS[@]}" \
      2> >(grep -v "^WARNING: Location" >&2)
    INSTALL=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    UNINSTALL=("$VENV/bin/python" -m pip uninstall --quiet --yes)
  fi
  # Editable: the pipeline runs from this checkout (Snakefile, config/, rules), so `fwbench` must run
  # this checkout's code, whose commit the run results record. No build isolation: the locked setuptools.
  "${INSTALL[@]}" --no-deps --no-build-isolation -e "$ROOT"
  EXTRA_LINES="$(PYTHONPATH="$ROOT" "$VENV/bin/python" -m workflow.lib.lockfile extras "${LOCKS[@]}")"
  if [[ -n "$EXTRA_LINES" ]]; then
    mapfile -t EXTRA <<< "$EXTRA_LINES"
    echo "fwbench: removing what the locks do not hold: ${EXTRA[*]}" >&2
    "${UNINSTALL[@]}" "${EXTRA[@]}"
  fi
  PYTHONPATH="$ROOT" "$VENV/bin/python" -m workflow.lib.lockfile stamp "$VENV" "${LOCKS[@]}"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$ROOT"
