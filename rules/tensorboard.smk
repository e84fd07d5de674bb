# The study in TensorBoard (study.tensorboard=true; pipeline/report/tensorboard.py): every run's
# curves and the HParams table, exported from the runs tables and histories once they exist.
#   tensorboard --logdir results/<study>/tensorboard


TENSORBOARD_RUNS = [
    f"{STUDY_DIR}/runs.csv",
    *([CONFIRM_FILES["runs"]] if CONFIRM_ON else []),
    *(batch_runs_file(size) for size in STUDY.batch_sizes if size != STUDY.settings.batch_size),
]


rule tensorboard:
    input:
        TENSORBOARD_RUNS,
    output:
        directory(TENSORBOARD_DIR),
    log:
        f"{STUDY_DIR}/logs/tensorboard.log",
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.report.tensorboard --runs {input} --out {output} > {log} 2>&1"
