"""TFLitePusher: ships blessed TFLite models to a versioned destination."""
