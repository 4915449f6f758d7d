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
