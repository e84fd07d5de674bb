# The study, composed and validated once when the workflow is read, and the helpers the
# rules share. A bad override stops here, before any job, with nothing under results/ touched.

import dataclasses
import json

from pipeline.cohort import cohort_spec
from pipeline.compose import compose_study
from pipeline.config import cohort_parts, StudyConfigError


_unknown_keys = sorted(set(config) - {"overrides"})
if _unknown_keys:
    raise StudyConfigError(
        f"unknown --config key(s) {_unknown_keys}: the only key is 'overrides', "
        'e.g. --config overrides="study=smoke optimizer=[adam]"'
    )

STUDY = compose_study(config.get("overrides"))
STUDY_DIR = f"results/{STUDY.name}"
DATA_FILE = f"{STUDY_DIR}/data/{STUDY.dataset['name']}.npz"
# One training job per optimizer x schedule x seed x part (cohort_size rates per part).
PARTS = {
    (optimizer, schedule, str(seed), str(part)): rates
    for optimizer in STUDY.optimizers
    for schedule in STUDY.schedules
    for seed in STUDY.settings.seeds
    for part, rates in enumerate(cohort_parts(STUDY.rates, STUDY.settings.cohort_size))
}
# Rule parameters as JSON: Snakemake reruns a job when its parameters change.
STUDY_JSON = json.dumps(STUDY.as_dict())
DATASET_JSON = json.dumps(STUDY.dataset)
DIAGNOSIS_JSON = json.dumps(dataclasses.asdict(STUDY.diagnosis))
MANIFESTS = [
    f"{STUDY_DIR}/cohorts/{optimizer}/{schedule}/seed{seed}/part{part}.json"
    for optimizer, schedule, seed, part in PARTS
]


def train_spec(wildcards):
    """The JSON spec of one training job: a change in it reruns just that job."""
    key = (wildcards.optimizer, wildcards.schedule, wildcards.seed, wildcards.part)
    return json.dumps(cohort_spec(STUDY, key[0], key[1], int(key[2]), PARTS[key]))
