#!/usr/bin/env bash
# The test suite (extra arguments go to pytest, e.g. -m "not slow" while iterating).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# The report test renders the page in Debian's headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" == "0" ]]; then
    echo "fwbench: installing Debian's chromium for the report test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "fwbench: could not install chromium; the browser test will be skipped" >&2
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "fwbench: could not install chromium; the browser test will be skipped" >&2
  fi
fi
exec python -m pytest "$@"
