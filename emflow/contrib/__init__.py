"""Variants that run with emflow's trainer but are not (yet) shown to help: kept apart from the core.

The inclusion rule, as optax's ``contrib``: a variant enters the core (``emflow.em.e_steps``,
``emflow.train.hooks``, a ``TrainConfig`` default) once a measured run shows it helps a main
job or a documented use, with its table in the docs; until then it lives here, tested like
the core and built only on the core's public interfaces, so the loop never changes for it.

    hard_em.hard()                     classification EM: each example wholly to its most probable component
    shared_rounds.schedule(n, base)    n rounds of gamma = 1/K before ``base``'s schedule
    annealing.schedule(b0, r, base)    deterministic annealing of ``base``'s first r exact rounds from beta b0
    balanced.schedule(base, ...)       equal-size warm-start parts; exact responsibilities with equal totals
    copies.init_copies(model, key, x)  a GenMM start from K copies of one flow (a user's own loop)
    reseed.reseed_dead(model, state, key, threshold)   dead components re-seeded by splitting (own loop)
    pi_plot.PiPlot(workdir)            a hook: pi of every component over the epochs, as pi.png

``base`` is a ``TrainConfig``'s own schedule, ``train.e_step_schedule(config, num_dims, has_partition)``;
a schedule goes to ``fit(..., e_step_of_round=...)``. Each was measured on MNIST and did not keep
GenMM's generators alive (the research log; ``experiments.ablations.init_variants``).
"""
