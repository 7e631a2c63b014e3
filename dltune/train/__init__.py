"""The training loop and where its results go; no Ray imports here."""
