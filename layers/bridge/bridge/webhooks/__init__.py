"""Signed webhooks: which events a receiver gets, queueing, delivery attempts, signatures."""
