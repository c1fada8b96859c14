"""The image experiments' jobs, one file each: ``get_config()`` returns an ``experiments.config.ImageConfig``.

``base.py`` is the cpu setting every CPU job starts from; ``<dataset>_<model>.py`` adds what
that job measured to help; ``paper_genmm.py`` and ``paper_latmm.py`` are the reference code's
sizes. Run another file with ``--config experiments/configs/FILE.py``.
"""
