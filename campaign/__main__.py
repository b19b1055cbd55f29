"""`python -m campaign` runs the same command as the `campaign` console script."""

from campaign.cli import main

main()
