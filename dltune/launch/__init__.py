"""Launchers: in-process (also under torchrun), a local torchrun, Ray Train."""
