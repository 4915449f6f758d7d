# Results -> summary table and the self-contained HTML report (reports/ reads result files only).


rule config_record:
    """The resolved configuration and what each backend was offered, for the report."""
    output:
        config=f"{RESULTS}/config.json",
        devices=f"{RESULTS}/devices.json",
    params:
        config=json.dumps(config),
        devices=json.dumps(PLAN.devices),
    run:
        Path(output.config).write_text(params.config + "\n")
        Path(output.devices).write_text(params.devices + "\n")


rule summary:
    input:
        PLAN.run_files(RESULTS),
    output:
        report(f"{RESULTS}/summary.csv", caption="../report/summary.rst", category="Summary"),
    log:
        f"{RESULTS}/logs/summary.log",
    shell:
        "{PY} -m reports.results --results {RESULTS} --out {output} > {log} 2>&1"


rule report:
    input:
        runs=PLAN.run_files(RESULTS),
        datasets=expand(f"{RESULTS}/datasets/{{dataset}}.png", dataset=PLAN.datasets),
        config=rules.config_record.output.config,
        devices=rules.config_record.output.devices,
    output:
        html=report(f"{RESULTS}/report/index.html", caption="../report/index.rst", category="Report"),
        plots=report(
            directory(f"{RESULTS}/report/plots"),
            patterns=["{name}.png"],
            caption="../report/plots.rst",
            category="Key plots",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "{PY} -m reports.html --results {RESULTS} --out {output.html} --plots {output.plots} > {log} 2>&1"
