"""DynamoDB: the job table and the webhook delivery log, and the helpers they share."""
