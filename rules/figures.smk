# Figures: one rule each, flagged for `snakemake --report` with a caption; each writes the
# PNG and the CSV table it draws (pipeline/figures/). Then the self-contained HTML report.

FIGURES = [
    "lr_sensitivity",
    "fitting_map",
    "learning_curves",
    "generalisation_gap",
    "schedule_shapes",
    "schedule_comparison",
    "cost_to_target",
    "finder_curves",
]
# With hyperparameter searches, their two figures and the method comparison join the report.
HPO_FIGURES = ["hpo_history", "hpo_trials"] if SEARCHES else []
REPORT_EXTRA = {"methods": f"{STUDY_DIR}/methods.csv"} if SEARCHES else {}


localrules:
    figure_lr_sensitivity,
    figure_fitting_map,
    figure_learning_curves,
    figure_generalisation_gap,
    figure_schedule_shapes,
    figure_schedule_comparison,
    figure_cost_to_target,
    figure_finder_curves,
    figure_hpo_history,
    figure_hpo_trials,


rule figure_lr_sensitivity:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/lr_sensitivity.png", caption="../report/lr_sensitivity.rst", category="1. Learning-rate sensitivity"),
        table=f"{STUDY_DIR}/figures/lr_sensitivity.csv",
    log:
        f"{STUDY_DIR}/logs/figures/lr_sensitivity.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures lr_sensitivity --runs {input.runs} --out {output.figure} > {log} 2>&1"


rule figure_fitting_map:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/fitting_map.png", caption="../report/fitting_map.rst", category="2. Fitting behaviour"),
        table=f"{STUDY_DIR}/figures/fitting_map.csv",
    log:
        f"{STUDY_DIR}/logs/figures/fitting_map.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures fitting_map --runs {input.runs} --out {output.figure} > {log} 2>&1"


rule figure_learning_curves:
    input:
        curves=f"{STUDY_DIR}/curves.csv",
        best=f"{STUDY_DIR}/best.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/learning_curves.png", caption="../report/learning_curves.rst", category="2. Fitting behaviour"),
        table=f"{STUDY_DIR}/figures/learning_curves.csv",
    log:
        f"{STUDY_DIR}/logs/figures/learning_curves.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures learning_curves --curves {input.curves} --best {input.best} --out {output.figure} > {log} 2>&1"


rule figure_generalisation_gap:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/generalisation_gap.png", caption="../report/generalisation_gap.rst", category="2. Fitting behaviour"),
        table=f"{STUDY_DIR}/figures/generalisation_gap.csv",
    log:
        f"{STUDY_DIR}/logs/figures/generalisation_gap.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures generalisation_gap --runs {input.runs} --out {output.figure} > {log} 2>&1"


rule figure_schedule_shapes:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
        curves=f"{STUDY_DIR}/curves.csv",
        best=f"{STUDY_DIR}/best.csv",
        config=f"{STUDY_DIR}/config.yaml",
    output:
        figure=report(f"{STUDY_DIR}/figures/schedule_shapes.png", caption="../report/schedule_shapes.rst", category="3. Schedules"),
        table=f"{STUDY_DIR}/figures/schedule_shapes.csv",
    log:
        f"{STUDY_DIR}/logs/figures/schedule_shapes.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures schedule_shapes --runs {input.runs} --curves {input.curves} --best {input.best}"
        " --config {input.config} --out {output.figure} > {log} 2>&1"


rule figure_schedule_comparison:
    input:
        best=f"{STUDY_DIR}/best.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/schedule_comparison.png", caption="../report/schedule_comparison.rst", category="3. Schedules"),
        table=f"{STUDY_DIR}/figures/schedule_comparison.csv",
    log:
        f"{STUDY_DIR}/logs/figures/schedule_comparison.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures schedule_comparison --best {input.best} --out {output.figure} > {log} 2>&1"


rule figure_cost_to_target:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/cost_to_target.png", caption="../report/cost_to_target.rst", category="4. Cost"),
        table=f"{STUDY_DIR}/figures/cost_to_target.csv",
    log:
        f"{STUDY_DIR}/logs/figures/cost_to_target.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures cost_to_target --runs {input.runs} --out {output.figure} > {log} 2>&1"


rule figure_finder_curves:
    input:
        curves=FINDER_FILES["curves"],
        suggestions=FINDER_FILES["suggestions"],
    output:
        figure=report(f"{STUDY_DIR}/figures/finder_curves.png", caption="../report/finder_curves.rst", category="5. LR range test"),
        table=f"{STUDY_DIR}/figures/finder_curves.csv",
    log:
        f"{STUDY_DIR}/logs/figures/finder_curves.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures finder_curves --finder {input.curves} --suggestions {input.suggestions}"
        " --out {output.figure} > {log} 2>&1"


rule figure_hpo_history:
    input:
        trials=expand(f"{STUDY_DIR}/hpo/{{search}}/trials.csv", search=SEARCHES),
        runs=f"{STUDY_DIR}/runs.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/hpo_history.png", caption="../report/hpo_history.rst", category="6. Hyperparameter search"),
        table=f"{STUDY_DIR}/figures/hpo_history.csv",
    log:
        f"{STUDY_DIR}/logs/figures/hpo_history.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures hpo_history --trials {input.trials} --runs {input.runs} --out {output.figure} > {log} 2>&1"


rule figure_hpo_trials:
    input:
        trials=expand(f"{STUDY_DIR}/hpo/{{search}}/trials.csv", search=SEARCHES),
        runs=f"{STUDY_DIR}/runs.csv",
    output:
        figure=report(f"{STUDY_DIR}/figures/hpo_trials.png", caption="../report/hpo_trials.rst", category="6. Hyperparameter search"),
        table=f"{STUDY_DIR}/figures/hpo_trials.csv",
    log:
        f"{STUDY_DIR}/logs/figures/hpo_trials.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.figures hpo_trials --trials {input.trials} --runs {input.runs} --out {output.figure} > {log} 2>&1"


rule report_html:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
        best=f"{STUDY_DIR}/best.csv",
        config=f"{STUDY_DIR}/config.yaml",
        figures=expand(f"{STUDY_DIR}/figures/{{figure}}.png", figure=FIGURES + HPO_FIGURES),
        finder=f"{STUDY_DIR}/finder_vs_grid.csv",
        **REPORT_EXTRA,
    output:
        f"{STUDY_DIR}/report.html",
    params:
        figures=" ".join(f"--figure {figure}={STUDY_DIR}/figures/{figure}.png" for figure in FIGURES + HPO_FIGURES),
        methods=f"--methods {STUDY_DIR}/methods.csv" if SEARCHES else "",
    log:
        f"{STUDY_DIR}/logs/report.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.report --runs {input.runs} --best {input.best} --config {input.config}"
        " {params.figures} --finder-table {input.finder} {params.methods} --out {output} > {log} 2>&1"
