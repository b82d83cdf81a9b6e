"""The command-line commands: the viewer, eval, batch and bench."""
