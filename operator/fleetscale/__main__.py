"""`python -m fleetscale`: the command line."""

from fleetscale.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
