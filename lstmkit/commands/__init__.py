"""One module per CLI command; see lstmkit/cli.py."""
