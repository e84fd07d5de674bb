"""A training job: ``python -m pipeline.training --spec <json> --data <npz> --manifest <json>``."""

from pipeline.training.cohort import main

if __name__ == "__main__":
    main()
