"""The LR range test job: ``python -m pipeline.finder --spec <json> --data <npz> ...``."""

from pipeline.finder.range_test import main

if __name__ == "__main__":
    main()
