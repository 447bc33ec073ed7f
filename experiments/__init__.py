"""Experiment entry points, run as scripts (`python experiments/pets.py --help`); `cli` is the
command line they share."""
