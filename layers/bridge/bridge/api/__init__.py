"""The HTTP API: Router One's paths and envelope, what each route answers, and the authorizer."""
