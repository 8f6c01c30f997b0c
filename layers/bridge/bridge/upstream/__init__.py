"""Talking to Router One: its client, the stack's API key and callers' own keys."""
