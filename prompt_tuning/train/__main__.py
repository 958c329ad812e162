"""`python -m prompt_tuning.train ...` is `prompt-tuning train ...`."""
import sys

from prompt_tuning.train.main import main

sys.exit(main())
