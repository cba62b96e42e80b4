"""Private: the project configuration file and the user-level secret store."""
