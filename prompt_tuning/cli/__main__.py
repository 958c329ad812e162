"""`python -m prompt_tuning.cli <command> ...` is `prompt-tuning <command> ...`."""
import sys

from prompt_tuning.cli import main

sys.exit(main())
