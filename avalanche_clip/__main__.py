import sys

from avalanche_clip.cli import main

if __name__ == "__main__":  # only as a program, never on an import (multiprocessing re-imports a main module)
    sys.exit(main())
