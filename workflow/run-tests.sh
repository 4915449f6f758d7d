#!/usr/bin/env bash
# The test suite (extra arguments go to pytest, e.g. -m "not slow" while iterating).
export FWBENCH_DEV=1  # the test tools too (requirements-dev.lock)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# Debian packages some tests need, installed where missing (one apt-get call for all of them):
# chromium (the report rendered in a browser), slurm-wlm + munge (a real Slurm cluster on
# 127.0.0.1), postgresql (a real PostgreSQL under `mlflow server`). Without them, those tests
# skip and say why.
MISSING=()
command -v chromium >/dev/null 2>&1 || MISSING+=(chromium)
command -v slurmctld >/dev/null 2>&1 || [[ -x /usr/sbin/slurmctld ]] || MISSING+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || [[ -x /usr/sbin/munged ]] || MISSING+=(munge)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || MISSING+=(postgresql)
if (( ${#MISSING[@]} )); then
  SUDO=()
  [[ "$(id -u)" == "0" ]] || SUDO=(sudo -n)
  if [[ "$(id -u)" == "0" ]] || command -v sudo >/dev/null 2>&1; then
    echo "fwbench: installing Debian's ${MISSING[*]} for the tests that need them" >&2
    ("${SUDO[@]}" apt-get update -qq \
      && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${MISSING[@]}" >/dev/null) \
      || echo "fwbench: could not install ${MISSING[*]}; the tests that need them will be skipped" >&2
  else
    echo "fwbench: not root and no sudo: ${MISSING[*]} not installed; the tests that need them will be skipped" >&2
  fi
fi
# One worker per CPU (-n auto), whole files per worker so module fixtures build once;
# much of the suite waits on imports, subprocesses and services. `-n 0` runs it in one process.
# Then the tests marked serial (they judge the machine's timing: CPU/wall, foreign load) run alone.
# Exit 5 (nothing collected) of one phase is not a failure: a selection may hold only one kind.
one=0 two=0
python -m pytest -n auto --dist loadfile "$@" || one=$?
python -m pytest -n 0 --serial-only -p no:cacheprovider "$@" || two=$?
if [[ $one == 5 && $two == 5 ]]; then exit 5; fi
for s in "$one" "$two"; do [[ $s == 0 || $s == 5 ]] || exit "$s"; done
exit 0
