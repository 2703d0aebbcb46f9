"""Amazon Personalize destinations: PutEvents (events.py), PutItems (items.py), PutUsers (users.py)."""
