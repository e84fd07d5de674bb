"""A search worker or summary: ``python -m pipeline.search worker|summary --spec <json> ...``."""

from pipeline.search.worker import main

if __name__ == "__main__":
    main()
