"""``lrstudy``: a Hydra-native front door to the workflow.

    lrstudy model=cnn optimizer=[adam,rmsprop] study.seeds=[0,1,2] -- --cores all
    lrstudy study=smoke --cfg job          # print the composed study, run nothing
    lrstudy --help                         # Hydra's help: groups and their options

Everything before ``--`` is a Hydra override; everything after goes to Snakemake (default
``--cores all``). The study is validated first; then Snakemake runs with
``--config overrides="<the same overrides>"``, the route SLURM jobs and scripts use, so the
two spellings always run the same study.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence, Tuple

from pipeline.config.compose import format_overrides

SNAKEFILE = Path(__file__).resolve().parent.parent / "Snakefile"


def split_arguments(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Hydra's arguments before ``--``, Snakemake's after (``--cores all`` when none)."""
    arguments = list(argv)
    if "--" in arguments:
        cut = arguments.index("--")
        return arguments[:cut], arguments[cut + 1 :] or ["--cores", "all"]
    return arguments, ["--cores", "all"]


def snakemake_command(overrides: Sequence[str], snakemake_arguments: Sequence[str]) -> List[str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *snakemake_arguments]
    if overrides:
        command += ["--config", "overrides=" + format_overrides(overrides)]
    return command


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from pipeline.config.compose import register_schema, validate
    from pipeline.config.schema import StudyConfigError, conf_dir, study_dir

    hydra_arguments, snakemake_arguments = split_arguments(sys.argv[1:])
    sys.argv = [sys.argv[0], *hydra_arguments]
    register_schema()

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def app(cfg: DictConfig) -> None:
        overrides = list(HydraConfig.get().overrides.task)
        try:
            study = validate(cfg, overrides)
        except StudyConfigError as error:
            print(f"lrstudy: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        command = snakemake_command(overrides, snakemake_arguments)
        print(f"study {study.name!r}: {study_dir(study.name)}/\n$ {shlex.join(command)}", flush=True)
        raise SystemExit(subprocess.call(command))

    app()


if __name__ == "__main__":
    main()
