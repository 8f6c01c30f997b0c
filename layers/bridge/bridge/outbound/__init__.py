"""Every call the bridge makes outward: total deadlines, the SSRF guard, pinned posts, Retry-After."""
