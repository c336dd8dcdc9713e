"""Trace-driven discrete-event simulation of placement policies (pure: callers read the files)."""
