"""Ablations: experiments that measure variants kept in ``emflow.contrib`` (not shown to help).

    python -m experiments.ablations.init_variants    # initialisations and E-steps of a small GenMM
"""
