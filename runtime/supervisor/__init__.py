"""The supervisor process: one per state root, parent of every container init."""
