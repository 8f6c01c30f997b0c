"""`video-bridge`: a terminal client for the video bridge's HTTP API and its outcome events.

`main` parses the command line, `api` talks HTTP, `format` turns answers into text, `tail`
follows the SNS topic through a temporary SQS queue.
"""
