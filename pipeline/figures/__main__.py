"""``python -m pipeline.figures <figure> ...``: see :mod:`pipeline.figures.cli`."""

from pipeline.figures.cli import main

if __name__ == "__main__":
    main()
