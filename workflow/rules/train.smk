# One job per (experiment, backend, device): a run result JSON and one MLflow run.


rule mlflow_store:
    """Create the MLflow store and experiment once, before parallel jobs write to it."""
    output:
        touch(STORE),
    params:
        py=PY,
        uri=config["mlflow"]["tracking_uri"] or "",
        experiment=config["mlflow"]["experiment"],
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "results/logs/mlflow_store.log",
    conda:
        CONDA_ENV
    shell:
        "{params.py} -m workflow.scripts.init_store --results results --uri={params.uri:q}"
        " --experiment {params.experiment:q} > {log} 2>&1"


rule calibrate:
    """The machine ceiling (SGEMM GFLOP/s at the run's threads), timed in a timing slot."""
    output:
        "results/machine.json",
    params:
        py=PY,
        threads=config["threads"],
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/logs/calibrate.log",
    conda:
        CONDA_ENV
    shell:
        "{params.py} -m workflow.scripts.calibrate --threads {params.threads} --results results --out {output}"
        " > {log} 2>&1"


rule train:
    input:
        unpack(train_inputs),
    output:
        # one run result per seed (config `seeds`): results/runs/{experiment}/{backend}-{device}/seed{N}.json
        expand("results/runs/{{experiment}}/{{backend}}-{{device}}/seed{seed}.json", seed=PLAN.seeds),
    params:
        py=PY,
        reference=lambda wc, input: " ".join(input.get("reference", [])),
        uri=config["mlflow"]["tracking_uri"] or "",
        experiment=config["mlflow"]["experiment"],
        repeats=config["repeats"],
        min_repeat=config["min_repeat_seconds"],
        # The resolved experiment (entry with defaults, reported figures): what decides the job's result,
        # so editing one catalogue entry reruns exactly its jobs.
        resolved=lambda wc: PLAN.experiments[wc.experiment].to_json(),
        seeds=" ".join(map(str, PLAN.seeds)),
        time_all=" --time-all-seeds" if config["time_all_seeds"] else "",
        figures="" if config["mlflow"]["figures"] else " --no-mlflow-figures",
        batch=config["inference_batch"],
        scale=config["epochs_scale"],
    threads: config["threads"]
    # Measured peak RSS of a training job: up to 1.1 GB (TensorFlow); wall up to 2 min on a loaded
    # 2-core machine. `gpu` is the resource the Slurm executor turns into --gpus.
    resources:
        gpu=lambda wc: 1 if wc.device == "gpu" else 0,
        mem_mb=2000,
        runtime=20,
    benchmark:
        "results/benchmarks/{experiment}/{backend}-{device}.tsv"
    log:
        "results/logs/runs/{experiment}/{backend}-{device}.log",
    conda:
        CONDA_ENV
    shell:
        "{params.py} -m workflow.scripts.train --experiment {wildcards.experiment} --backend {wildcards.backend}"
        " --device {wildcards.device} --dataset {input.dataset} --reference {params.reference}"
        " --experiment-json {params.resolved:q} --threads {threads} --repeats {params.repeats}"
        " --seeds {params.seeds}{params.time_all}{params.figures}"
        " --min-repeat-seconds {params.min_repeat} --machine {input.machine}"
        " --inference-batch {params.batch} --epochs-scale {params.scale} --results results"
        " --uri={params.uri:q} --mlflow-experiment {params.experiment:q} --out {output} > {log} 2>&1"
