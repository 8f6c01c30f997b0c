"""CloudFormation done locally, in parts: the intrinsics, what a deploy records, and one creator per
resource type, grouped by service. `bridge_local.deployer` runs them in order."""
