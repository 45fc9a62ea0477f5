import sys

from jaxhp.cli import main

sys.exit(main())
