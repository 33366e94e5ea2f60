import sys

from avalanche_clip.cli import main

sys.exit(main())
