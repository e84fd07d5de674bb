"""Build the report: ``python -m pipeline.report --runs ... --best ... --out report.html``."""

from pipeline.report.build import main

if __name__ == "__main__":
    main()
