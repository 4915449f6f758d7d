# One job per (experiment, backend, device): a run result JSON and one MLflow run.


rule mlflow_store:
    """Create the MLflow store and experiment once, before parallel jobs write to it."""
    output:
        touch(STORE),
    params:
        uri=lambda wc: config["mlflow"]["tracking_uri"] or "",
        experiment=config["mlflow"]["experiment"],
    log:
        f"{RESULTS}/logs/mlflow_store.log",
    shell:
        "{PY} -m workflow.scripts.init_store --results {RESULTS} --uri={params.uri:q}"
        " --experiment {params.experiment:q} > {log} 2>&1"


def train_inputs(wc):
    exp = PLAN.experiments[wc.experiment]
    inputs = {"dataset": f"{RESULTS}/datasets/{exp.dataset}.npz", "store": STORE}
    if wc.backend != backends.REFERENCE and backends.REFERENCE in PLAN.backends:
        inputs["reference"] = f"{RESULTS}/runs/{wc.experiment}/{backends.REFERENCE}-cpu.json"
    return inputs


rule train:
    input:
        unpack(train_inputs),
    output:
        f"{RESULTS}/runs/{{experiment}}/{{backend}}-{{device}}.json",
    params:
        reference=lambda wc, input: input.get("reference", ""),
        catalogue=shlex.quote(str(REPO / config.get("catalogue", "config/experiments.yaml"))),
        uri=lambda wc: config["mlflow"]["tracking_uri"] or "",
        experiment=config["mlflow"]["experiment"],
        repeats=config["repeats"],
        seed=config["seed"],
        batch=config["inference_batch"],
        scale=config.get("epochs_scale", 1),
    threads: config["threads"]
    resources:
        gpu=lambda wc: 1 if wc.device == "gpu" else 0,
    benchmark:
        f"{RESULTS}/benchmarks/{{experiment}}/{{backend}}-{{device}}.tsv"
    log:
        f"{RESULTS}/logs/runs/{{experiment}}/{{backend}}-{{device}}.log",
    shell:
        "{PY} -m workflow.scripts.train --experiment {wildcards.experiment} --backend {wildcards.backend}"
        " --device {wildcards.device} --dataset {input.dataset} --reference={params.reference:q}"
        " --catalogue {params.catalogue} --threads {threads} --repeats {params.repeats} --seed {params.seed}"
        " --inference-batch {params.batch} --epochs-scale {params.scale} --results {RESULTS}"
        " --uri={params.uri:q} --mlflow-experiment {params.experiment:q} --out {output} > {log} 2>&1"
