"""Container image and Vertex AI submission and scheduling."""
