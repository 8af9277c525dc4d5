"""`python -m training ...` (see training/cli.py)."""
import multiprocessing

from training.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main())
