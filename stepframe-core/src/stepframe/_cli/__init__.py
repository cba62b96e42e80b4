"""Private: import from `stepframe` instead."""
