"""`make bench`: the service measured against its goals (see bench/RESULTS.md)."""
