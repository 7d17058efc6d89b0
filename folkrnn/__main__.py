"""``python -m folkrnn`` runs the same app as the ``folkrnn`` command."""

from folkrnn.cli import main

if __name__ == "__main__":
    main()
