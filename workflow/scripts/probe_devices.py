"""Print, as one JSON line, whether each named backend sees a CUDA device."""

from __future__ import annotations

import json
import sys

import backends


def main(names: list[str]) -> None:
    out = {}
    for name in names:
        try:
            devs = backends.get_backend(name).devices()
            out[name] = {"gpu": "gpu" in devs, "reason": "" if "gpu" in devs else f"{name} sees no CUDA device"}
        except Exception as e:  # noqa: BLE001 - reported, never fatal
            out[name] = {"gpu": False, "reason": f"{name} could not be probed: {e}"}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
