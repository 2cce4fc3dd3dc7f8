"""Domain vocabulary shared by every service: statuses and their state machines, ids."""
