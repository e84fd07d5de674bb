# Figures: one rule per figure of the registry (pipeline/figures/registry.py), each flagged
# for `snakemake --report` with the figure's caption file and category; each writes the PNG and
# the CSV table it draws (pipeline/figures/). Then the self-contained HTML report.

from pipeline.figures.registry import FIGURES as FIGURE_REGISTRY
from pipeline.figures.registry import category_label, study_figures


# The study's file(s) behind each input of a figure (the registry's INPUTS: also the options of
# `python -m pipeline.figures` and the names of the rules' inputs).
FIGURE_INPUT_FILES = {
    "runs": f"{STUDY_DIR}/runs.csv",
    "curves": f"{STUDY_DIR}/curves.csv",
    "best": f"{STUDY_DIR}/best.csv",
    "config": f"{STUDY_DIR}/config.yaml",
    "finder": FINDER_FILES["curves"],
    "suggestions": FINDER_FILES["suggestions"],
    "trials": expand(f"{HPO_DIR}/{{search}}/trials.csv", search=SEARCHES),
    "batch_sizes": BATCH_FILES["sizes"],
    "batch_scaling": BATCH_FILES["scaling"],
}
# The figures of this study, in reading order: the searches' two join with hyperparameter searches,
# and so does the method comparison; the batch-size figure and tables with study.batch_sizes.
REPORT_FIGURES = study_figures(with_searches=bool(SEARCHES), with_batch_sizes=BATCH_SIZES_ON)
REPORT_EXTRA = {
    **({"methods": f"{STUDY_DIR}/methods.csv"} if SEARCHES else {}),
    **({"confirm": CONFIRM_FILES["table"]} if CONFIRM_ON else {}),
    **(BATCH_FILES if BATCH_SIZES_ON else {}),
}


for figure in FIGURE_REGISTRY.values():

    rule:
        name:
            f"figure_{figure.name}"
        input:
            **{kind: FIGURE_INPUT_FILES[kind] for kind in figure.inputs},
        output:
            figure=report(
                f"{STUDY_DIR}/figures/{figure.name}.png",
                caption=str(figure.caption_path),
                category=category_label(figure.name),
            ),
            table=f"{STUDY_DIR}/figures/{figure.name}.csv",
        params:
            # Evaluated here, while `figure` is this rule's: the shell command itself is
            # formatted when the job runs, after the loop has moved on.
            figure=figure.name,
            inputs=figure_options(figure, FIGURE_INPUT_FILES),
        log:
            f"{STUDY_DIR}/logs/figures/{figure.name}.log",
        localrule: True
        conda:
            "../envs/pipeline.yaml"
        shell:
            "python -m pipeline.figures {params.figure} {params.inputs} --out {output.figure} > {log} 2>&1"


rule report_html:
    input:
        runs=f"{STUDY_DIR}/runs.csv",
        best=f"{STUDY_DIR}/best.csv",
        config=f"{STUDY_DIR}/config.yaml",
        figures=expand(f"{STUDY_DIR}/figures/{{figure}}.png", figure=REPORT_FIGURES),
        finder=f"{STUDY_DIR}/finder_vs_grid.csv",
        **REPORT_EXTRA,
    output:
        f"{STUDY_DIR}/report.html",
    params:
        figures=" ".join(f"--figure {figure}={STUDY_DIR}/figures/{figure}.png" for figure in REPORT_FIGURES),
        methods=f"--methods {STUDY_DIR}/methods.csv" if SEARCHES else "",
        confirm=f"--confirm {CONFIRM_FILES['table']}" if CONFIRM_ON else "",
        batch=f"--batch {BATCH_FILES['sizes']} {BATCH_FILES['scaling']}" if BATCH_SIZES_ON else "",
    log:
        f"{STUDY_DIR}/logs/report.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.report --runs {input.runs} --best {input.best} --config {input.config}"
        " {params.figures} --finder-table {input.finder} {params.methods} {params.confirm} {params.batch} --out {output} > {log} 2>&1"
