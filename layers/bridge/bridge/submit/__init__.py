"""Taking a job in: forward it to Router One, record it, start its tracking; idempotent retries."""
