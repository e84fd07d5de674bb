# The LR range test: one job per optimizer (a fresh model, the study's seeds), then its
# comparison with the grid. A checkpoint, so that study.grid.mode=finder can centre the
# training grid on its suggestion.

FINDER_FILES = {
    "curves": expand(f"{STUDY_DIR}/finder/{{optimizer}}/finder.csv", optimizer=list(STUDY.optimizers)),
    "suggestions": expand(f"{STUDY_DIR}/finder/{{optimizer}}/suggestions.json", optimizer=list(STUDY.optimizers)),
}


localrules:
    finder_compare,


checkpoint lr_finder:
    input:
        data=DATA_FILE,
    output:
        curve=f"{STUDY_DIR}/finder/{{optimizer}}/finder.csv",
        suggestions=f"{STUDY_DIR}/finder/{{optimizer}}/suggestions.json",
    params:
        spec=finder_spec,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        **GPU_RESOURCES,
    log:
        f"{STUDY_DIR}/logs/finder/{{optimizer}}.log",
    benchmark:
        f"{STUDY_DIR}/benchmarks/finder/{{optimizer}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.finder --spec {params.spec:q} --data {input.data} --threads {threads}"
        " --gpus {resources.gpu} --curve {output.curve} --suggestions {output.suggestions} > {log} 2>&1"


rule finder_compare:
    input:
        suggestions=FINDER_FILES["suggestions"],
        runs=f"{STUDY_DIR}/runs.csv",
        best=f"{STUDY_DIR}/best.csv",
    output:
        f"{STUDY_DIR}/finder_vs_grid.csv",
    log:
        f"{STUDY_DIR}/logs/finder_compare.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.analysis.finder_vs_grid --suggestions {input.suggestions} --runs {input.runs}"
        " --best {input.best} --out {output} > {log} 2>&1"
