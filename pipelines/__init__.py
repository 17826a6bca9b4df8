"""The pipeline definition, its runners and the mbqa command line."""
