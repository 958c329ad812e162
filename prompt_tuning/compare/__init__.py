"""`prompt-tuning compare`: every method on one frozen model, task and data, in one table.

`methods` names the methods and their gin files, `runs` runs one and reads
its row back from its MODEL_DIR, `report` writes the table (Markdown, JSON)
and the score-vs-parameters plot.
"""
