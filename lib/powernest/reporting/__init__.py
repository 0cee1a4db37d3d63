"""Run results: the journal written as cases end, and JUnit built from it."""
