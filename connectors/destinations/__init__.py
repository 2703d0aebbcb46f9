"""Where events and recommendations go."""
