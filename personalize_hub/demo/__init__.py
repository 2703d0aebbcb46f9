"""`hub demo`: a synthetic shop driven through the embedded hub into local_personalize, end to end."""
