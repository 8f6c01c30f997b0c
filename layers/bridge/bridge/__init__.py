"""Domain package of the Router One video bridge, shipped to Lambda as a layer.

Subpackages, one concern each: ``api`` (HTTP routes and the authorizer), ``submit`` (taking a
job in), ``upstream`` (Router One's client and keys), ``tracking`` (the poll loop), ``outcomes``
(how a job ends and who hears of it), ``webhooks`` (signed deliveries), ``outbound`` (deadlines
and the SSRF guard for every outward call), ``store`` (DynamoDB). The modules at this level are
shared by all of them: models, errors, settings, clients, observability, tenancy, time.

Subpackage ``__init__`` files import nothing, so a function loads only the modules it uses.
"""
