#!/usr/bin/env python3
"""Stands in for the `stepstone-prepare-region` Lambda function of the multi-region example.

Reads lambda:invoke's parameters on stdin and answers the way arn:aws:states:::lambda:invoke
does: {ExecutedVersion, Payload, StatusCode}.
"""
import json
import os
import sys

params = json.load(sys.stdin)
payload = params.get("Payload", {})
region = payload.get("region") or os.environ.get("STEPSTONE_REGION", "")
print(json.dumps({
    "ExecutedVersion": "$LATEST",
    "StatusCode": 200,
    "Payload": {"region": region, "artifacts": f"s3://artifacts-{region}/{payload.get('stackName', 'stack')}.zip"},
}))
