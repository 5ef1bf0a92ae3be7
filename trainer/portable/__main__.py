"""``python -m trainer.portable pack|distill``."""

from trainer.portable.cli import main

main()
