"""``python -m lookalike.cli``: the ``lookalike`` command."""

from . import app

app()
