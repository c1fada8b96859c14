"""Runnable experiments: ``python -m experiments.<name> --help``."""
from emflow.xla_flags import check_xla_flags


def exit_on_refused_xla_flags() -> None:
    """Exit with a message naming the flags (and the jax version) when XLA would abort on ``$XLA_FLAGS``.

    Every experiment's ``__main__`` calls it first: without it, XLA aborts the process at its
    first computation with one log line.
    """
    try:
        check_xla_flags()
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
