# The batch-size question (study.batch_sizes; pipeline/analysis/batch.py): the grid is trained
# again at each other batch size (one training job per batch size, optimizer and part, as the
# grid's; run folders under batch/b<size>/runs/, complete ones skipped on a rerun), aggregated
# per batch size like the grid, then batch_sizes.csv holds the best rate per batch size and
# batch_scaling.csv the fitted exponent of best rate ∝ batch_size**k with its interval and rule.

localrules:
    batch_aggregate,
    batch_scaling,


use rule train_population as batch_train with:
    input:
        data=DATA_FILE,
        **({"suggestions": f"{STUDY_DIR}/finder/{{optimizer}}/suggestions.json"} if FINDER_MODE else {}),
    output:
        manifest=f"{BATCH_DIR}/b{{batch}}/populations/{{optimizer}}/part{{part}}.json",
    params:
        spec=batch_train_spec,
    log:
        f"{STUDY_DIR}/logs/batch/b{{batch}}/{{optimizer}}/part{{part}}.log",
    benchmark:
        f"{STUDY_DIR}/benchmarks/batch/b{{batch}}/{{optimizer}}/part{{part}}.tsv"
    conda:
        "../envs/pipeline.yaml"


use rule aggregate as batch_aggregate with:
    input:
        batch_manifests,
    output:
        runs=f"{BATCH_DIR}/b{{batch}}/runs.csv",
        curves=f"{BATCH_DIR}/b{{batch}}/curves.csv",
        best=f"{BATCH_DIR}/b{{batch}}/best.csv",
    log:
        f"{STUDY_DIR}/logs/batch/b{{batch}}/aggregate.log",
    conda:
        "../envs/pipeline.yaml"


rule batch_scaling:
    input:
        [batch_runs_file(size) for size in STUDY.batch_sizes],
    output:
        sizes=BATCH_FILES["sizes"],
        scaling=BATCH_FILES["scaling"],
    params:
        runs=" ".join(f"{size}={batch_runs_file(size)}" for size in STUDY.batch_sizes),
    log:
        f"{STUDY_DIR}/logs/batch/scaling.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.analysis.batch --runs {params.runs} --sizes-out {output.sizes}"
        " --scaling-out {output.scaling} > {log} 2>&1"
