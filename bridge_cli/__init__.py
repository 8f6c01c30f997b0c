"""`video-bridge`: a terminal client for the video bridge's HTTP API and its outcome events.

`main` builds the parser and runs a command; the commands live by what they act on (`jobs`,
`account`, `webhooks`, `events`), with `progress` for `submit --wait` and `common` for what they
share. `api` talks HTTP, `format` turns answers into text, `tail` follows the SNS topic through a
temporary SQS queue.
"""
