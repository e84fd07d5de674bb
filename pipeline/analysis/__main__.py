"""Aggregate the runs: ``python -m pipeline.analysis --manifests ... --runs ... --curves ... --best ...``."""

from pipeline.analysis.aggregate import main

if __name__ == "__main__":
    main()
