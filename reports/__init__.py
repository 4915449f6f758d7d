"""Result files -> tables, plots, the HTML report, the CI regression check and its baselines.

Reads result files only: it never re-trains, never imports a deep-learning framework and
never talks to MLflow.
"""
