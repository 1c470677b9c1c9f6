import sys

from bayes_ablation.cli import main

sys.exit(main())
