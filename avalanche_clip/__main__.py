import sys

from avalanche_clip.cli import main

if __name__ == "__main__":  # not when a worker process of a sweep imports it as its main module
    sys.exit(main())
