import sys

from smesh.cli import main

sys.exit(main())
