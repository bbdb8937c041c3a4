"""Compression and retention as policy in code (assets.py), reconciled daily (schedules.py)."""
