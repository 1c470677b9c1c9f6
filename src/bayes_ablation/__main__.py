import sys

from bayes_ablation.cli.main import main

sys.exit(main())
