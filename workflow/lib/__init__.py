"""Glue between datasets/, backends/ and the results: the only code that writes results
and talks to MLflow."""
