"""``python -m stepframe`` is the ``stepframe`` command."""

from stepframe._cli.main import main

main()
