# "Where the time goes": one job per (sweep, backend, device), each point timed as the runs are
# (workflow/lib/sweep.py); then the sweep tables for the regression check and the report.


wildcard_constraints:
    sweep="|".join(map(re.escape, config["sweeps"]["specs"])) or "NONE",


rule sweep:
    wildcard_constraints:
        backend="|".join(sorted({re.escape(b) for _, b, _ in PLAN.sweep_jobs})) or "NONE",
    input:
        machine="results/machine.json",
    output:
        "results/sweeps/{sweep}/{backend}-{device}.json",
    params:
        py=PY,
        spec=lambda wc: json.dumps(config["sweeps"]["specs"][wc.sweep], sort_keys=True),
        batches=" ".join(map(str, config["sweeps"]["batch_sizes"])),
        widths=" ".join(map(str, config["sweeps"]["widths"])),
        repeats=config["sweeps"]["repeats"],
        min_repeat=config["sweeps"]["min_repeat_seconds"],
        steps=config["sweeps"]["steps_per_epoch"],
        seed=PLAN.seeds[0],
    threads: config["threads"]
    priority: PRIORITY["sweep"]
    resources:
        gpu=lambda wc: 1 if wc.device == "gpu" else 0,
        mem_mb=2000,
        runtime=60,
    benchmark:
        "results/benchmarks/sweeps/{sweep}/{backend}-{device}.tsv"
    log:
        "results/logs/sweeps/{sweep}/{backend}-{device}.log",
    conda:
        CONDA_TRAIN
    shell:
        "{params.py} -m workflow.scripts.sweep --sweep {wildcards.sweep} --spec-json {params.spec:q}"
        " --backend {wildcards.backend} --device {wildcards.device} --batch-sizes {params.batches}"
        " --widths {params.widths} --threads {threads} --repeats {params.repeats}"
        " --min-repeat-seconds {params.min_repeat} --steps-per-epoch {params.steps} --seed {params.seed}"
        " --machine {input.machine} --results results --out {output} > {log} 2>&1"


rule sweep_mlflow:
    """One MLflow run per sweep job, logged from one process (workflow/scripts/sweep_mlflow.py)."""
    input:
        sweeps=PLAN.sweep_files(),
        store=STORE,
    output:
        "results/sweeps/mlflow.json",
    params:
        py=PY,
        uri=config["mlflow"]["tracking_uri"] or "",
        experiment=config["mlflow"]["experiment"],
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/sweeps/mlflow.log",
    conda:
        CONDA_TRAIN_CPU
    shell:
        "{params.py} -m workflow.scripts.sweep_mlflow --results results --uri={params.uri:q}"
        " --mlflow-experiment {params.experiment:q} --out {output} {input.sweeps} > {log} 2>&1"


rule sweep_summary:
    """Every sweep point (summary.csv) and every fit (overheads.csv), for the regression check."""
    input:
        PLAN.sweep_files(),
    output:
        summary="results/sweeps/summary.csv",
        overheads="results/sweeps/overheads.csv",
    params:
        py=PY,
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "results/logs/sweeps/summary.log",
    conda:
        CONDA_REPORT
    shell:
        "{params.py} -m reports.sweeps --results results --summary {output.summary}"
        " --overheads {output.overheads} > {log} 2>&1"
