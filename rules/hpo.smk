# Hyperparameter optimisation (hpo.samplers set): per search, `hpo.workers` worker jobs share
# one Optuna study in a journal file and together run exactly `hpo.trials` trials; a summary
# rule writes trials.csv once they are done; then the comparison of every method.

HPO_DIR = f"{STUDY_DIR}/hpo"


localrules:
    hpo_summary,
    methods,


rule hpo_worker:
    input:
        data=DATA_FILE,
    output:
        done=f"{HPO_DIR}/{{search}}/worker{{worker}}.done",
    params:
        spec=hpo_spec,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
        **GPU_RESOURCES,
    log:
        f"{STUDY_DIR}/logs/hpo/{{search}}/worker{{worker}}.log",
    benchmark:
        f"{STUDY_DIR}/benchmarks/hpo/{{search}}/worker{{worker}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.search worker --spec {params.spec:q} --data {input.data} --worker {wildcards.worker}"
        " --threads {threads} --gpus {resources.gpu} --done {output.done} > {log} 2>&1"


rule hpo_summary:
    input:
        expand(f"{HPO_DIR}/{{{{search}}}}/worker{{worker}}.done", worker=range(STUDY.hpo.workers)),
    output:
        f"{HPO_DIR}/{{search}}/trials.csv",
    params:
        spec=hpo_spec,
    log:
        f"{STUDY_DIR}/logs/hpo/{{search}}/summary.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.search summary --spec {params.spec:q} --out {output} > {log} 2>&1"


rule methods:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
        best=f"{STUDY_DIR}/best.csv",
        trials=expand(f"{HPO_DIR}/{{search}}/trials.csv", search=SEARCHES),
        finder=f"{STUDY_DIR}/finder_vs_grid.csv",
        # Each method's choice retrained on the confirmation's fresh seeds: the fair ranking.
        **({"fresh": CONFIRM_FILES["runs"]} if CONFIRM_ON else {}),
    output:
        f"{STUDY_DIR}/methods.csv",
    params:
        fresh=f"--fresh-runs {CONFIRM_FILES['runs']}" if CONFIRM_ON else "",
    log:
        f"{STUDY_DIR}/logs/methods.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.analysis.methods --runs {input.runs} --best {input.best} --trials {input.trials}"
        " --finder {input.finder} {params.fresh} --out {output} > {log} 2>&1"
