"""Pushed test runs and agent results: taken in at the door (service) and from the command line (cli)."""
