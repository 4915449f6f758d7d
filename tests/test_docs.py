"""docs/ is the repository's own record: it keys every source code the catalogue cites, its links
resolve, and nothing points outside the clone any more."""

import re

import yaml

from tests.paths import ROOT

OUTSIDE = "../" + "shared"  # spelled in two parts so this file does not match itself
SKIP_DIRS = {".git", ".venv", ".venv-gpu", ".ci", ".snakemake", "results", "__pycache__", ".ruff_cache", "data"}
DOCS = ("README.md", "docs/documents.md", "docs/design.md", "docs/extending.md")


def source_codes() -> set[str]:
    """The document codes (first word of every `source:`) of the catalogue's reported figures."""
    cat = yaml.safe_load((ROOT / "config/experiments.yaml").read_text())
    return {fig["source"].split()[0] for e in cat["experiments"].values() for fig in e["reported"]}


def keyed_codes() -> set[str]:
    text = (ROOT / "docs/documents.md").read_text()
    key = text.split("## Key of source codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9]+)` \|", key, flags=re.M))


def test_documents_md_keys_every_source_code_the_catalogue_cites():
    cited, keyed = source_codes(), keyed_codes()
    assert {"adl1", "sdls1", "mlf2", "vidl"} <= cited
    missing = sorted(cited - keyed)
    assert not missing, f"docs/documents.md's key of source codes lacks {missing}: add a row for each"


def test_docs_links_resolve():
    for doc in DOCS:
        path = ROOT / doc
        assert path.is_file(), f"{doc} is missing"
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            assert (path.parent / target).exists(), f"{doc} links to {target}, which does not exist"


def test_no_file_points_outside_the_repository():
    found = []
    for path in ROOT.rglob("*"):
        if not path.is_file() or SKIP_DIRS & set(path.relative_to(ROOT).parts):
            continue
        if OUTSIDE.encode() in path.read_bytes():
            found.append(str(path.relative_to(ROOT)))
    assert not found, f"these files still point at {OUTSIDE}; point them at docs/ instead: {found}"
