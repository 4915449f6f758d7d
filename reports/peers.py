""" "What your own code would do": per experiment, the documents' Keras `fit`, the idiomatic
per-framework loops, the tuned loops and the speed-of-light `fused` reference side by side, as
speed-ups over the documents' own code (Keras `fit` on TensorFlow)."""

from __future__ import annotations

from reports.results import num, throughput, timing

BASELINE = "keras-tensorflow"
# What each kind of code is, in the order a reader climbs from the documents' code to the machine.
KINDS = (
    ("the documents' code", ("keras-tensorflow", "keras-jax", "keras-torch")),
    ("idiomatic loops", ("torch-idiomatic", "torch-eager", "tensorflow-eager", "jax-eager")),
    ("tuned loops", ("torch", "tensorflow", "jax")),
    ("speed of light", ("fused",)),
)


def peers_table(runs: list[dict]) -> list[dict]:
    """One row per (experiment, backend) that finished on CPU, with its speed-up over the experiment's
    Keras-on-TensorFlow run (None where that run is absent)."""
    kind_of = {b: kind for kind, names in KINDS for b in names}
    order = {b: i for i, b in enumerate(b for _, names in KINDS for b in names)}
    by_exp: dict[str, dict[str, dict]] = {}
    for r in runs:
        if r["device"] == "cpu" and r["backend"] in kind_of and throughput(r, "train") is not None:
            by_exp.setdefault(r["experiment"], {})[r["backend"]] = r
    rows = []
    for exp, by_backend in sorted(by_exp.items()):
        base = throughput(by_backend[BASELINE], "train") if BASELINE in by_backend else None
        for backend in sorted(by_backend, key=order.__getitem__):
            r = by_backend[backend]
            rate = throughput(r, "train")
            rows.append(
                {
                    "experiment": exp,
                    "kind": kind_of[backend],
                    "backend": backend,
                    "variant": timing(r, "variant"),
                    "samples_per_s": rate,
                    "percent_of_ceiling": num(timing(r, "percent_of_ceiling")),
                    "speedup": rate / base if base else None,
                }
            )
    return rows
