"""The learning-rate study workflow.

    snakemake --cores all
    snakemake --cores all --config overrides="model=cnn optimizer=[adam,rmsprop] study.seeds=[0,1,2]"

The study is composed from conf/ with Hydra and validated before any job is planned: a bad
override stops here with a message naming the key, and nothing under results/ is touched.
"""

include: "rules/common.smk"


wildcard_constraints:
    optimizer="[A-Za-z0-9][A-Za-z0-9_.-]*",
    search="[a-z_]+",
    worker="[0-9]+",
    schedule="[A-Za-z0-9][A-Za-z0-9_.-]*",
    seed="[0-9]+",
    part="[0-9]+",
    batch="[0-9]+",


report: "report/workflow.rst"


localrules:
    all,
    study_config,
    aggregate,
    report_html,


rule all:
    input:
        f"{STUDY_DIR}/config.yaml",
        f"{STUDY_DIR}/runs.csv",
        f"{STUDY_DIR}/curves.csv",
        f"{STUDY_DIR}/best.csv",
        f"{STUDY_DIR}/report.html",
        *([CONFIRM_FILES["table"]] if CONFIRM_ON else []),
        *(BATCH_FILES.values() if BATCH_SIZES_ON else []),
        *([TENSORBOARD_DIR] if STUDY.settings.tensorboard else []),


rule study_config:
    output:
        report(f"{STUDY_DIR}/config.yaml", caption="report/config.rst", category="Study settings"),
    params:
        study=STUDY_JSON,
    log:
        f"{STUDY_DIR}/logs/study_config.log",
    conda:
        "envs/pipeline.yaml"
    shell:
        "python -m pipeline.config --study {params.study:q} --out {output} > {log} 2>&1"


rule dataset:
    input:
        DATASET_INPUTS,
    output:
        DATA_FILE,
    params:
        options=DATASET_JSON,
        listing=DATASET_LISTING,
    log:
        f"{STUDY_DIR}/logs/dataset.log",
    conda:
        "envs/pipeline.yaml"
    shell:
        "python -m pipeline.training.data --options {params.options:q} --out {output} > {log} 2>&1"


rule train:
    input:
        data=DATA_FILE,
        **({"suggestions": f"{STUDY_DIR}/finder/{{optimizer}}/suggestions.json"} if FINDER_MODE else {}),
    output:
        manifest=f"{STUDY_DIR}/cohorts/{{optimizer}}/{{schedule}}/seed{{seed}}/part{{part}}.json",
    params:
        spec=train_spec,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        **GPU_RESOURCES,
    log:
        f"{STUDY_DIR}/logs/train/{{optimizer}}/{{schedule}}/seed{{seed}}/part{{part}}.log",
    benchmark:
        f"{STUDY_DIR}/benchmarks/train/{{optimizer}}/{{schedule}}/seed{{seed}}/part{{part}}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "python -m pipeline.training --spec {params.spec:q} --data {input.data} --threads {threads}"
        " --gpus {resources.gpu} --manifest {output.manifest} > {log} 2>&1"


rule train_population:
    input:
        data=DATA_FILE,
        # grid.mode=finder: the rates come from the range test's checkpoint, which a job run
        # elsewhere (SLURM) must see as an input.
        **({"suggestions": f"{STUDY_DIR}/finder/{{optimizer}}/suggestions.json"} if FINDER_MODE else {}),
    output:
        manifest=f"{STUDY_DIR}/populations/{{optimizer}}/part{{part}}.json",
    params:
        spec=population_train_spec,
    # The longest jobs first: range tests and figures fill the cores around them.
    priority: 1
    threads: 1
    resources:
        # The models' budget (study.population_memory_mb) plus TensorFlow and the data.
        mem_mb=int(STUDY.settings.population_memory_mb) + 1000,
        runtime=60,
        **GPU_RESOURCES,
    log:
        f"{STUDY_DIR}/logs/train/{{optimizer}}/population/part{{part}}.log",
    benchmark:
        f"{STUDY_DIR}/benchmarks/train/{{optimizer}}/population/part{{part}}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "python -m pipeline.training --spec {params.spec:q} --data {input.data} --threads {threads}"
        " --gpus {resources.gpu} --manifest {output.manifest} > {log} 2>&1"


rule aggregate:
    input:
        manifests,
    output:
        runs=f"{STUDY_DIR}/runs.csv",
        curves=f"{STUDY_DIR}/curves.csv",
        best=f"{STUDY_DIR}/best.csv",
    params:
        diagnosis=DIAGNOSIS_JSON,
    log:
        f"{STUDY_DIR}/logs/aggregate.log",
    conda:
        "envs/pipeline.yaml"
    shell:
        "python -m pipeline.analysis --manifests {input} --runs {output.runs} --curves {output.curves}"
        " --best {output.best} --diagnosis {params.diagnosis:q} > {log} 2>&1"


include: "rules/finder.smk"
include: "rules/hpo.smk"
include: "rules/confirm.smk"
include: "rules/batch.smk"
include: "rules/figures.smk"
include: "rules/tensorboard.smk"
