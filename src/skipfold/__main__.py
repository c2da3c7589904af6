import sys

from skipfold.cli import main

sys.exit(main())
