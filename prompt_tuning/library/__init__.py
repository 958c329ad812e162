"""Prompt libraries (SPoT's source prompts): `store` (entries on disk, add, init from an
entry) and `similarity` (task similarity from prompts). What needs evaluation or
training, ranking by zero-shot score and tuning a task into a library, is in
`prompt_tuning.transfer`.
"""
from prompt_tuning.library.store import Entry, add, entries, from_library, get

__all__ = ["Entry", "add", "entries", "from_library", "get"]
