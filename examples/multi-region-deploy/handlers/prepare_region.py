"""The stepstone-prepare-region Lambda function: the stack parameters for one region.

Event: {"region", "role", "parameters": [{"ParameterKey", "ParameterValue"}]} (the shared
parameters). Returns {"parameters": [...]}: the shared ones plus the region's own.
"""


def handler(event, context):
    region = event["region"]
    role = event["role"]
    if role not in ("primary", "secondary"):
        raise ValueError(f"unknown role {role!r} for {region}")
    shared = [p for p in event.get("parameters", [])
              if p["ParameterKey"] not in ("DeployRegion", "RegionRole")]
    return {
        "parameters": shared + [
            {"ParameterKey": "DeployRegion", "ParameterValue": region},
            {"ParameterKey": "RegionRole", "ParameterValue": role},
        ]
    }
