"""Write the study file: ``python -m pipeline.config --study <json> --out config.yaml``."""

from pipeline.config.studyfile import main

if __name__ == "__main__":
    main()
