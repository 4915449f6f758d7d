# Every dataset of docs/documents.md, written as docs/design.md's dataset file plus a plot.


rule dataset:
    priority: PRIORITY["setup"]
    output:
        npz="results/datasets/{dataset}.npz",
        meta="results/datasets/{dataset}.json",
        plot=report(
            "results/datasets/{dataset}.png",
            caption="../report/dataset.rst",
            category="Datasets",
            labels={"dataset": "{dataset}"},
        ),
    params:
        py=PY,
        seed=config["data_seed"],
        mnist_dir=config["mnist_dir"] or "",
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/datasets/{dataset}.log",
    conda:
        CONDA_REPORT
    shell:
        "{params.py} -m workflow.scripts.make_dataset --name {wildcards.dataset} --seed {params.seed}"
        " --mnist-dir={params.mnist_dir:q} --npz {output.npz} --meta {output.meta} --plot {output.plot}"
        " > {log} 2>&1"
