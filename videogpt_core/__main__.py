import sys

from videogpt_core.cli import main

sys.exit(main())
