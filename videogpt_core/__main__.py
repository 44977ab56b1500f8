import sys

from videogpt_core.cli.main import main

sys.exit(main())
