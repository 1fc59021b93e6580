"""``python -m claimstate`` and the ``claimstate`` console script."""

from claimstate._cli import cli


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
