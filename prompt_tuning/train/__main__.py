"""`python -m prompt_tuning.train ...` is `prompt-tuning train ...`."""
import sys

from prompt_tuning.cli.train import main

sys.exit(main())
