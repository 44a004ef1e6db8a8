"""One file per ``scale`` sub-command: ``add_parser(subparsers)`` and ``run(args) -> int``."""
