"""The Trainer run_fn and its distribution strategies."""
