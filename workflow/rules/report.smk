# Results -> summary table and the self-contained HTML report (reports/ reads result files only).


rule config_record:
    """The resolved configuration and what each backend was offered, for the report."""
    priority: PRIORITY["setup"]
    output:
        config="results/config.json",
        devices="results/devices.json",
    params:
        config=json.dumps(config),
        devices=json.dumps(PLAN.devices),
    resources:
        mem_mb=200,
        runtime=2,
    log:
        "results/logs/config_record.log",
    run:
        Path(output.config).write_text(f"{params.config}\n")
        Path(output.devices).write_text(f"{params.devices}\n")


rule summary:
    input:
        PLAN.run_files(),
    output:
        summary=report("results/summary.csv", caption="../report/summary.rst", category="Summary"),
        over_seeds=report("results/summary_over_seeds.csv", caption="../report/summary.rst", category="Summary"),
    params:
        py=PY,
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "results/logs/summary.log",
    conda:
        CONDA_REPORT
    shell:
        "{params.py} -m reports.results --results results --out {output.summary} > {log} 2>&1"


rule history:
    """Every commit's figures from the MLflow store (workflow/lib/history.py), for the report's History section
    and `python -m reports.check --baseline-from-history N`; a store without history gives an empty one."""
    input:
        runs=PLAN.run_files(),
        store=STORE,
        config=rules.config_record.output.config,
    output:
        "results/history.json",
    params:
        py=PY,
        uri=config["mlflow"]["tracking_uri"] or "",
        experiment=config["mlflow"]["experiment"],
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/history.log",
    conda:
        CONDA_TRAIN_CPU
    shell:
        "{params.py} -m workflow.lib.history --results results --tracking-uri={params.uri:q}"
        " --experiment {params.experiment:q} --out {output} > {log} 2>&1"


rule report:
    input:
        runs=PLAN.run_files(),
        history=rules.history.output[0],
        datasets=expand("results/datasets/{dataset}.png", dataset=PLAN.datasets),
        config=rules.config_record.output.config,
        machine=rules.calibrate.output[0],
        devices=rules.config_record.output.devices,
        sweeps=SWEEP_OUTPUTS,
    output:
        html=report("results/report/index.html", caption="../report/index.rst", category="Report"),
        plots=report(
            directory("results/report/plots"),
            patterns=["{name}.png"],
            caption="../report/plots.rst",
            category="Key plots",
        ),
    params:
        py=PY,
    # The run's last job: its figures are drawn in up to 4 processes (Snakemake gives it at most --cores).
    threads: 4
    resources:
        mem_mb=2000,
        runtime=15,
    log:
        "results/logs/report.log",
    conda:
        CONDA_REPORT
    shell:
        "{params.py} -m reports.html --results results --out {output.html} --plots {output.plots} --jobs {threads}"
        " > {log} 2>&1"
