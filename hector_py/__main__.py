"""Allow ``python -m hector_py``."""

from hector_py.cli import main

main()
