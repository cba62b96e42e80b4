"""The run report (``stepframe report``) and the local web view (``stepframe ui``).

`model` reads what a run left (the history, its manifests, logs) into plain values;
`html` turns those into pages with pure functions; `server` serves them read-only.
"""
