"""The self-contained HTML report (``build``; ``python -m pipeline.report``): HTML helpers
(``html``), embedded figures and their captions (``figures``), and the results, range-test and
method sections (``results``, ``finder``, ``methods``). Pure pandas: no matplotlib or TensorFlow.
"""
