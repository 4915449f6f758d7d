"""The repository root, the one place tests find it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
