"""The experiment catalogue: load, validate, and turn an entry into a backend Spec. Each reported
figure is kept as the document printed it and gets the tolerance those digits allow (figure_tolerance)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import jsonschema
import yaml

import datasets
from backends.spec import HEAD_LOSS, OptimizerSpec, Spec

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "experiments.schema.yaml"
LOWER_IS_BETTER = {"mse", "mae", "loss"}
# Metrics counted in whole samples: a split of n samples cannot resolve them finer than 1/n.
COUNTED_METRICS = {"accuracy"}
# Float slack of `within`: a measurement exactly one tolerance away (one sample of 200: 0.985 against
# 0.99) must count as within, though 0.99 - 0.985 is 0.0050000000000000044 in binary floating point.
REL_SLACK = 1e-9


class CatalogueError(ValueError):
    """The catalogue (or a config naming catalogue entries) is wrong; the message says how to fix it."""


@dataclass
class Experiment:
    name: str
    dataset: str
    entry: dict  # the merged catalogue entry (defaults applied)
    reported: list[dict] = field(default_factory=list)

    def to_json(self) -> str:
        """Everything that defines the experiment, canonical (sorted keys): a job's param and input."""
        return json.dumps(
            {"name": self.name, "dataset": self.dataset, "entry": self.entry, "reported": self.reported}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        return cls(**json.loads(text))

    @property
    def needs_full_mnist(self) -> bool:
        return self.entry.get("needs") == "full_mnist"

    @property
    def preprocess(self) -> dict:
        return self.entry.get("preprocess", {})

    def spec(self, n_inputs: int, n_outputs: int, epochs_scale: float = 1.0) -> Spec:
        e = self.entry
        return Spec(
            kind=e["kind"],
            n_inputs=n_inputs,
            n_outputs=n_outputs,
            hidden=tuple(e.get("hidden", ())),
            activation=e["activation"] if e.get("hidden") else "linear",
            head=e["head"],
            epochs=max(1, round(e["epochs"] * epochs_scale)),
            batch_size=e["batch_size"],
            drop_last=e["drop_last"],
            shuffle=e["shuffle"],
            optimizer=OptimizerSpec(**e["optimizer"]),
            dtype=e["dtype"],
            init=e["init"],
        )

    def target(self) -> dict | None:
        """The time-to-target goal: configured, else the first numeric reported accuracy/mse figure."""
        if "target" in self.entry:
            return dict(self.entry["target"])
        for fig in self.reported:
            if fig["value"] is not None and fig["metric"] in ("accuracy", "mse"):
                return {"metric": fig["metric"], "split": fig["split"], "value": fig["value"]}
        return None


def printed_precision(printed: str) -> float:
    """Half a unit of the last digit the document printed ("50.8" -> 0.05, "1.00" -> 0.005, "16" -> 0.5):
    a figure printed that way stands for any value that rounds to it."""
    return float(Decimal(5).scaleb(int(Decimal(printed).as_tuple().exponent) - 1))


def figure_tolerance(figure: dict, n_split: int | None) -> float | None:
    """The tolerance of one loaded reported figure: the figure's own precision (`printed_precision`),
    for an accuracy never less than one sample of the measured split (1/n_split, since an accuracy on
    n samples moves in steps of 1/n), or the explicit `tolerance` of a figure that says `wider_because`.
    None for a figure without a value. n_split: the size of the figure's split (None: unknown)."""
    if figure.get("value") is None:
        return None
    if figure.get("wider_because"):
        return float(figure["tolerance"])
    tol = printed_precision(figure["printed"])
    if figure["metric"] in COUNTED_METRICS and n_split:
        tol = max(tol, 1.0 / n_split)
    return tol


def within(measured: float, value: float, tolerance: float) -> bool:
    """Is a measurement within a figure's tolerance? With a relative float slack (REL_SLACK), so a
    measurement exactly one tolerance away (one sample off) is within, as the rule means."""
    return abs(measured - value) <= tolerance * (1.0 + REL_SLACK)


def load(path: str | Path | None = None) -> dict[str, Experiment]:
    path = Path(path) if path else REPO / "config" / "experiments.yaml"
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CatalogueError(f"cannot read the experiment catalogue {path}: {e}") from e
    schema = yaml.safe_load(SCHEMA.read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    if errors:
        # the deepest error is the one that names the bad key or value (not "unevaluated properties")
        e = max(errors, key=lambda err: (err.validator != "unevaluatedProperties", len(err.absolute_path)))
        where = "/".join(str(p) for p in e.path) or "(top level)"
        if "reported" in e.path and list(e.path)[-1:] == ["value"] and e.validator == "type":
            raise CatalogueError(
                f"experiment catalogue {path}: at {where}: {e.message}; write a reported value as the document "
                f'printed it, quoted (value: "1.00"): YAML reads 1.00 as 1.0 and loses the digits that set the '
                "figure's tolerance"
            )
        raise CatalogueError(f"experiment catalogue {path}: at {where}: {e.message}; see {SCHEMA.name} for the keys")
    out = {}
    for name, entry in raw["experiments"].items():
        merged = _merge(raw["defaults"], entry)
        _check(name, merged, path)
        merged["reported"] = [_figure(name, merged["dataset"], fig, path) for fig in merged["reported"]]
        out[name] = Experiment(name=name, dataset=merged["dataset"], entry=merged, reported=merged["reported"])
    return out


def _figure(name: str, dataset: str, raw: dict, path: Path) -> dict:
    """One reported figure as loaded: `value` a number (None: no figure), `printed` the document's text
    of it, `tolerance` from `figure_tolerance` with the split's size. An explicit `tolerance` must be
    wider than the derived one and say `wider_because` (why the document's setup cannot be followed)."""
    fig = {**raw, "printed": raw["value"], "value": None if raw["value"] is None else float(raw["value"])}
    what = f"experiment {name!r} in {path}, reported {fig['split']} {fig['metric']} {fig['printed']}"
    n_split = datasets.SIZES[dataset][fig["split"]]
    derived = figure_tolerance({**fig, "wider_because": None}, n_split)
    if "tolerance" in fig or "wider_because" in fig:
        _check_wider(what, fig.get("tolerance"), fig.get("wider_because"), derived)
    fig["tolerance"] = figure_tolerance(fig, n_split)
    return fig


def _check_wider(what: str, explicit: float | None, because: str | None, derived: float | None) -> None:
    """An explicit tolerance is allowed only wider than the derived one and with its reason."""
    if derived is None:
        raise CatalogueError(f"{what}: a figure without a value has no tolerance; remove `tolerance`/`wider_because`")
    if explicit is None:
        raise CatalogueError(f"{what}: `wider_because` without a `tolerance`; give the wider tolerance or drop both")
    if not because:
        raise CatalogueError(
            f"{what}: explicit tolerance {explicit} without `wider_because`. The tolerance is derived from the "
            f"figure as printed ({derived:.6g} here: half a unit of its last digit, for an accuracy at least one "
            "sample of the split): remove `tolerance`, or keep it and add `wider_because:` saying why the "
            "document's setup cannot be followed (a seed missing the figure is no reason: the seed verdicts show it)"
        )
    if explicit <= derived:
        raise CatalogueError(
            f"{what}: tolerance {explicit} is not wider than the derived {derived:.6g}; remove `tolerance` and "
            "`wider_because`"
        )


def select(catalogue: dict[str, Experiment], wanted: str | list[str], full_mnist: bool) -> list[Experiment]:
    """The experiments a config asks for. "all": every entry, with mnist10k standing in for mnist
    unless full_mnist is set (then the full one replaces its stand-in)."""
    if wanted == "all":
        chosen = []
        for exp in catalogue.values():
            stand_in = exp.entry.get("stands_in_for")
            if exp.needs_full_mnist and not full_mnist:
                continue
            if stand_in and full_mnist:
                continue
            chosen.append(exp)
        return chosen
    unknown = [w for w in wanted if w not in catalogue]
    if unknown:
        raise CatalogueError(
            f"unknown experiment(s) {unknown} in config `experiments:`; catalogue entries: {', '.join(catalogue)}"
        )
    return [catalogue[w] for w in wanted]


def _merge(defaults: dict, entry: dict) -> dict:
    merged = copy.deepcopy(defaults)
    for k, v in entry.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = copy.deepcopy(v)
    return merged


def _check(name: str, e: dict, path: Path) -> None:
    where = f"experiment {name!r} in {path}"
    if e["dataset"] not in datasets.names():
        raise CatalogueError(f"{where} names unknown dataset {e['dataset']!r}; known: {', '.join(datasets.names())}")
    if e["kind"] == "mlp" and not e.get("hidden"):
        raise CatalogueError(f"{where}: kind 'mlp' needs `hidden: [units, ...]`")
    if e["kind"] != "mlp" and e.get("hidden"):
        raise CatalogueError(f"{where}: kind {e['kind']!r} has no hidden layers; use kind 'mlp' or drop `hidden`")
    expected_head = {"linear": "linear", "logistic": "sigmoid", "softmax": "softmax"}.get(e["kind"])
    if expected_head and e["head"] != expected_head:
        raise CatalogueError(f"{where}: kind {e['kind']!r} needs head {expected_head!r}, not {e['head']!r}")
    if e["head"] not in HEAD_LOSS:
        raise CatalogueError(f"{where}: unknown head {e['head']!r}")
    task = datasets.TASK_OF.get(e["dataset"])
    fits = {"regression": ("linear",), "binary": ("sigmoid", "softmax"), "multiclass": ("softmax",)}
    if task and e["head"] not in fits[task]:
        raise CatalogueError(
            f"{where}: head {e['head']!r} does not fit the {task} dataset {e['dataset']!r}; use one of {fits[task]}"
        )
