"""Transfer between tasks over a prompt library: `ranking` (which source prompt for a
target, SPoT) and `continual` (tune a new task into a library, the others untouched).
"""
