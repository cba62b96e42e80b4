"""Reading what runs left behind, after the fact: the `Runs` client API, the stores that
hold the artifacts, step logs, and clean-up of runs and artifacts."""
