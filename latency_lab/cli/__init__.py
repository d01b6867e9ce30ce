"""The command line: app.py registers one module per command group; options.py holds what they share."""
