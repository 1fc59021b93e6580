"""``python -m claimstate``, the same command line as the ``claimstate`` script."""

from claimstate.cli import main

if __name__ == "__main__":
    main()
