"""The HTTP API's routes, one Powertools router per resource; `bridge.api.http_api` includes them all."""
