# Every dataset of REFERENCE.md, written as DESIGN.md's dataset file plus a plot.


rule dataset:
    output:
        npz=f"{RESULTS}/datasets/{{dataset}}.npz",
        meta=f"{RESULTS}/datasets/{{dataset}}.json",
        plot=report(
            f"{RESULTS}/datasets/{{dataset}}.png",
            caption="../report/dataset.rst",
            category="Datasets",
            labels={"dataset": "{dataset}"},
        ),
    params:
        seed=config["seed"],
        mnist_dir=lambda wc: config["mnist_dir"] or "",
    log:
        f"{RESULTS}/logs/datasets/{{dataset}}.log",
    shell:
        "{PY} -m workflow.scripts.make_dataset --name {wildcards.dataset} --seed {params.seed}"
        " --mnist-dir={params.mnist_dir:q} --npz {output.npz} --meta {output.meta} --plot {output.plot}"
        " > {log} 2>&1"
