# The MLflow store, the machine ceiling, the resolved experiments, and the training jobs.


rule mlflow_store:
    """Create the MLflow store and experiment once, before parallel jobs write to it."""
    priority: PRIORITY["setup"]
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
        CONDA_TRAIN_CPU
    shell:
        "{params.py} -m workflow.scripts.init_store --results results --uri={params.uri:q}"
        " --experiment {params.experiment:q} > {log} 2>&1"


rule calibrate:
    """The machine ceiling (SGEMM GFLOP/s at the run's threads), timed in a timing slot."""
    priority: PRIORITY["setup"]
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
        CONDA_TRAIN_CPU
    shell:
        "{params.py} -m workflow.scripts.calibrate --threads {params.threads} --results results --out {output}"
        " > {log} 2>&1"


rule experiments_record:
    """The resolved experiments (catalogue entries with defaults and reported figures): what decides a
    training's result besides the config, so editing the catalogue reruns the training jobs."""
    priority: PRIORITY["setup"]
    output:
        "results/experiments.json",
    params:
        resolved=json.dumps({name: json.loads(exp.to_json()) for name, exp in PLAN.experiments.items()}),
    resources:
        mem_mb=200,
        runtime=2,
    log:
        "results/logs/experiments_record.log",
    run:
        Path(output[0]).write_text(f"{params.resolved}\n")


# One job per (backend, device): every experiment and seed of the backend in one process, writing
# results/runs/{experiment}/{backend}-{device}/seed{N}.json and one MLflow run per training. A rule
# per group of backends that train the same experiments on the same seeds (plan.train_groups): the
# `backends:` on every seed ("train"), config first_seed_only ("train_first_seed"), the peers.
for group in PLAN.train_groups():

    rule:
        name:
            group.rule
        wildcard_constraints:
            backend="|".join(map(re.escape, group.backends)),
        input:
            unpack(train_inputs),
        output:
            [run_file(e, "{backend}", "{device}", s) for e in group.experiments for s in group.seeds],
        params:
            py=PY,
            experiments=" ".join(group.experiments),
            seeds=" ".join(map(str, group.seeds)),
            reference=(
                f" --reference-backend {backends.REFERENCE} --reference-seeds "
                + " ".join(map(str, PLAN.seeds_for(backends.REFERENCE)))
                if backends.REFERENCE in PLAN.backends
                else ""
            ),
            uri=config["mlflow"]["tracking_uri"] or "",
            experiment=config["mlflow"]["experiment"],
            repeats=config["repeats"],
            min_repeat=config["min_repeat_seconds"],
            time_all=" --time-all-seeds" if config["time_all_seeds"] else "",
            figures="" if config["mlflow"]["figures"] else " --no-mlflow-figures",
            batch=config["inference_batch"],
            scale=config["epochs_scale"],
            processes=config["timing_processes"],
        threads: config["threads"]
        priority: train_priority
        # Measured in the default run (2-core machine, every experiment of a backend in one job): peak
        # RSS up to 1.3 GB (tensorflow), wall up to 9 min (tensorflow-eager, five seeds; 2.9 min on
        # one). `gpu` is the resource the Slurm executor turns into --gpus.
        resources:
            gpu=lambda wc: 1 if wc.device == "gpu" else 0,
            mem_mb=3000,
            runtime=60,
        benchmark:
            "results/benchmarks/train/{backend}-{device}.tsv"
        log:
            "results/logs/train/{backend}-{device}.log",
        conda:
            CONDA_TRAIN
        shell:
            "{params.py} -m workflow.scripts.train --backend {wildcards.backend} --device {wildcards.device}"
            " --experiments {params.experiments} --seeds {params.seeds} --resolved {input.resolved}"
            "{params.reference}{params.time_all}{params.figures} --threads {threads} --repeats {params.repeats}"
            " --min-repeat-seconds {params.min_repeat} --machine {input.machine} --inference-batch {params.batch}"
            " --epochs-scale {params.scale} --results results --uri={params.uri:q}"
            " --mlflow-experiment {params.experiment:q} --timing-processes {params.processes} > {log} 2>&1"
