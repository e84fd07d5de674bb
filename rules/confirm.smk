# The confirmation on fresh seeds (study.confirm; pipeline/analysis/confirm.py): once the grid is
# aggregated, a plan (a checkpoint) names the rates to retrain on seeds the grid did not use; one
# training job per optimizer and part trains them (as the grid's jobs do, run folders under
# confirm/runs/, complete ones skipped on a rerun); then confirm.csv holds each cell's verdict.

localrules:
    confirm_plan,
    confirm_table,


# With searches, every method's chosen rate is retrained too (the fair method comparison).
CONFIRM_PLAN_INPUTS = {"trials": expand(f"{HPO_DIR}/{{search}}/trials.csv", search=SEARCHES), "finder": f"{STUDY_DIR}/finder_vs_grid.csv"} if SEARCHES else {}


checkpoint confirm_plan:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
        best=f"{STUDY_DIR}/best.csv",
        **CONFIRM_PLAN_INPUTS,
    output:
        plan=CONFIRM_FILES["plan"],
    params:
        seeds=" ".join(str(seed) for seed in CONFIRM.seeds),
        cells=CONFIRM.cells,
        methods=f"--trials {' '.join(CONFIRM_PLAN_INPUTS['trials'])} --finder {CONFIRM_PLAN_INPUTS['finder']}" if SEARCHES else "",
    log:
        f"{STUDY_DIR}/logs/confirm/plan.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.analysis.confirm plan --runs {input.runs} --best {input.best} --seeds {params.seeds}"
        " --cells {params.cells} {params.methods} --out {output.plan} > {log} 2>&1"


use rule train_population as confirm_train with:
    input:
        data=DATA_FILE,
        # The spec is read from the plan: a job run elsewhere (SLURM) must see it as an input.
        plan=CONFIRM_FILES["plan"],
    output:
        manifest=f"{CONFIRM_DIR}/populations/{{optimizer}}/part{{part}}.json",
    params:
        spec=confirm_train_spec,
    log:
        f"{STUDY_DIR}/logs/confirm/{{optimizer}}/part{{part}}.log",
    benchmark:
        f"{STUDY_DIR}/benchmarks/confirm/{{optimizer}}/part{{part}}.tsv"
    conda:
        "../envs/pipeline.yaml"


rule confirm_table:
    input:
        plan=CONFIRM_FILES["plan"],
        manifests=confirm_manifests,
        best=f"{STUDY_DIR}/best.csv",
    output:
        runs=CONFIRM_FILES["runs"],
        table=CONFIRM_FILES["table"],
    log:
        f"{STUDY_DIR}/logs/confirm/table.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.analysis.confirm table --plan {input.plan} --manifests {input.manifests}"
        " --best {input.best} --runs-out {output.runs} --out {output.table} > {log} 2>&1"
