"""Variants that run with emflow's trainer but are not (yet) shown to help: kept apart from the core.

The inclusion rule, as optax's ``contrib``: a variant enters the core (``emflow.em.e_steps``,
``emflow.train.hooks``, a ``TrainConfig`` default) once a measured run shows it helps a main
job or a documented use, with its table in the docs; until then it lives here, tested like
the core and built only on the core's public interfaces, so the loop never changes for it.

    hard_em.hard()          classification EM: each example wholly to its most probable component
    pi_plot.PiPlot(workdir) a hook: pi of every component over the epochs, as pi.png
"""
