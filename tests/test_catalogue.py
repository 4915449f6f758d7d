"""The experiment catalogue: every experiment of docs/documents.md, runnable by name; bad entries rejected."""

from pathlib import Path

import pytest
import yaml

import datasets
from tests.paths import ROOT
from workflow.lib import catalogue as cat

# docs/documents.md's experiments table, one name per row (mnist10k-mlp stands in for mnist-mlp).
DOCUMENT_ROWS = [
    "linear-logistic", "moons-logistic", "circles-logistic", "moons-mlp", "circles-mlp", "sine-mlp",
    "spiral-softmax", "spiral-mlp", "blobs4-softmax", "blobs2-softmax", "hotels-linear-linear",
    "hotels-mlp-linear", "hotels-mlp", "hotels-hot-mlp", "hotels-hot-mlp-big", "hotels-category-mlp",
    "hotels-category-mlp-big", "mnist-mlp",
]  # fmt: skip


def test_every_document_row_is_in_the_catalogue_with_its_figure():
    c = cat.load()
    assert set(DOCUMENT_ROWS) <= set(c)
    for name in DOCUMENT_ROWS:
        exp = c[name]
        assert exp.reported, f"{name} has no reported figure"
        for fig in exp.reported:
            assert fig["source"].split()[0] in {"adl1", "sdls1", "mlf2", "vidl"}


@pytest.mark.parametrize("name", [n for n in cat.load() if cat.load()[n].dataset != "mnist"])
def test_every_entry_builds_a_spec_for_its_dataset(name):
    from workflow.lib.runner import prepare

    exp = cat.load()[name]
    prep = prepare(datasets.build(exp.dataset), exp)
    spec = exp.spec(prep.X_train.shape[1], prep.n_outputs)
    assert spec.n_inputs == prep.X_train.shape[1] and prep.Y_train.shape[1] == spec.n_outputs


def test_default_selection_uses_mnist10k_and_full_mnist_is_one_switch():
    c = cat.load()
    default = {e.name for e in cat.select(c, "all", full_mnist=False)}
    assert "mnist10k-mlp" in default and "mnist-mlp" not in default
    assert set(DOCUMENT_ROWS) - {"mnist-mlp"} <= default
    full = {e.name for e in cat.select(c, "all", full_mnist=True)}
    assert "mnist-mlp" in full and "mnist10k-mlp" not in full


def _write(tmp_path, mutate) -> Path:
    raw = yaml.safe_load((ROOT / "config/experiments.yaml").read_text())
    mutate(raw["experiments"])
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e["moons-mlp"].update(dataset="moonz"), "unknown dataset 'moonz'"),
        (lambda e: e["moons-mlp"].update(kind="transformer"), "transformer"),
        (lambda e: e["moons-mlp"].update(hidden=[]), "needs `hidden"),
        (lambda e: e["spiral-softmax"].update(head="sigmoid", kind="logistic"), "does not fit the multiclass"),
        (lambda e: e["moons-mlp"].update(epochz=3), "epochz"),
        (lambda e: e["moons-mlp"].update(optimizer={"name": "lbfgs"}), "lbfgs"),
    ],
)
def test_bad_entries_are_rejected_with_a_clear_message(tmp_path, mutate, message):
    with pytest.raises(cat.CatalogueError, match=message):
        cat.load(_write(tmp_path, mutate))


def test_unknown_experiment_in_config_names_the_catalogue():
    with pytest.raises(cat.CatalogueError, match="unknown experiment.*moons-nope"):
        cat.select(cat.load(), ["moons-nope"], full_mnist=False)


# ---- reported figures: tolerance = the figure's own precision ------------------------------


@pytest.mark.parametrize(
    "printed, precision",
    [("50.8", 0.05), ("0.86", 0.005), ("1.00", 0.005), ("0.9225", 0.00005), ("16", 0.5), ("144.5", 0.05)],
)
def test_precision_is_half_a_unit_of_the_last_printed_digit(printed, precision):
    assert cat.printed_precision(printed) == pytest.approx(precision, rel=1e-12)


def test_an_accuracy_is_never_finer_than_one_sample_of_its_split():
    def fig(metric: str, printed: str) -> dict:
        return {"metric": metric, "split": "test", "value": float(printed), "printed": printed}

    assert cat.figure_tolerance(fig("accuracy", "0.9225"), 800) == 1 / 800  # 0.00005 < one of 800 samples
    assert cat.figure_tolerance(fig("accuracy", "0.88"), 8) == 1 / 8
    assert cat.figure_tolerance(fig("accuracy", "0.99"), 800) == pytest.approx(0.005)  # the print is coarser
    assert cat.figure_tolerance(fig("loss", "0.1815"), 800) == pytest.approx(0.00005)  # a loss is not counted
    assert cat.figure_tolerance(fig("accuracy", "0.9225"), None) == pytest.approx(0.00005)
    assert cat.figure_tolerance({**fig("accuracy", "0.9"), "value": None, "printed": None}, 800) is None
    wider = {**fig("accuracy", "0.955"), "tolerance": 0.04, "wider_because": "a stand-in"}
    assert cat.figure_tolerance(wider, 2000) == 0.04


def test_one_sample_off_is_within_despite_binary_floats():
    assert 0.99 - 0.985 > 0.005  # why `within` has a slack
    assert cat.within(0.985, 0.99, 1 / 200) and cat.within(0.995, 0.99, 1 / 200)
    assert not cat.within(0.98, 0.99, 1 / 200)


def test_loaded_figures_carry_value_printed_and_the_derived_tolerance():
    blobs = {(f["split"], f["metric"]): f for f in cat.load()["blobs4-softmax"].reported}
    acc = blobs[("test", "accuracy")]
    assert acc["value"] == 0.9225 and acc["printed"] == "0.9225" and acc["tolerance"] == 1 / 800
    moons = cat.load()["moons-mlp"].reported[0]
    assert moons["value"] == 1.0 and moons["printed"] == "1.00" and moons["tolerance"] == pytest.approx(0.005)
    # recomputing from a loaded figure gives the same tolerance (the runner may pass its split's n)
    assert cat.figure_tolerance(acc, 800) == acc["tolerance"]


def test_no_figure_is_wider_than_its_precision_without_wider_because():
    for name, exp in cat.load().items():
        n = datasets.SIZES[exp.dataset]
        for fig in exp.reported:
            if fig["value"] is None:
                assert fig["tolerance"] is None
                continue
            derived = cat.figure_tolerance({**fig, "wider_because": None}, n[fig["split"]])
            if fig.get("wider_because"):
                assert fig["tolerance"] > derived, f"{name}: wider_because on a tolerance that is not wider"
            else:
                assert fig["tolerance"] == derived, f"{name} {fig['split']} {fig['metric']}: widened silently"
            assert "widened" not in fig.get("note", ""), f"{name}: a note still speaks of a widened tolerance"


def _figure(e: dict, name: str, **changes) -> None:
    e[name]["reported"][0].update(changes)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda e: _figure(e, "moons-logistic", tolerance=0.03),
            r"'moons-logistic'.*reported train accuracy 0\.86: explicit tolerance 0\.03 without `wider_because`.*"
            r"0\.005 here.*remove `tolerance`, or keep it and add `wider_because:`",
        ),
        (
            lambda e: _figure(e, "moons-logistic", tolerance=0.001, wider_because="a different split"),
            r"'moons-logistic'.*tolerance 0\.001 is not wider than the derived 0\.005",
        ),
        (lambda e: _figure(e, "moons-logistic", wider_because="why"), r"`wider_because` without a `tolerance`"),
        (
            lambda e: _figure(e, "moons-logistic", value=0.86),
            r"reported/0/value: 0\.86 is not of type.*write a reported value as the document printed it, quoted",
        ),
        (lambda e: _figure(e, "moons-logistic", value="about 0.86"), r"does not match"),
        (
            lambda e: _figure(e, "hotels-mlp-linear", tolerance=1.0, wider_because="x"),
            r"a figure without a value has no tolerance",
        ),
    ],
)
def test_bad_figures_are_rejected_naming_experiment_figure_and_fix(tmp_path, mutate, message):
    with pytest.raises(cat.CatalogueError, match=message):
        cat.load(_write(tmp_path, mutate))


def test_a_wider_tolerance_with_its_reason_loads(tmp_path):
    path = _write(tmp_path, lambda e: _figure(e, "moons-logistic", tolerance=0.03, wider_because="a reason"))
    fig = cat.load(path)["moons-logistic"].reported[0]
    assert fig["tolerance"] == 0.03 and fig["wider_because"] == "a reason"
