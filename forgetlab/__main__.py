"""``python -m forgetlab``: the same as the ``forgetlab`` command."""

from .cli import main

main()
