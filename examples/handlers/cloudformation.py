#!/usr/bin/env python3
"""Stands in for CloudFormation in the multi-region example: `cloudformation.py ACTION`.

Stacks live in a JSON file per region under $STEPSTONE_EXAMPLE_STATE (default: a temporary
directory), so a run is repeatable. A new stack reports CREATE_IN_PROGRESS once, then
CREATE_COMPLETE, so the example's Wait/DescribeStacks loop turns at least once. Errors are
printed as {"Error", "Cause"} with the names Step Functions gives CloudFormation's errors.
"""
import json
import os
import sys
import tempfile

action = sys.argv[1]
params = json.load(sys.stdin)
region = os.environ.get("STEPSTONE_REGION") or "us-east-1"
state_dir = os.environ.get("STEPSTONE_EXAMPLE_STATE", os.path.join(tempfile.gettempdir(), "stepstone-example"))
os.makedirs(state_dir, exist_ok=True)
path = os.path.join(state_dir, f"{region}.json")
stacks = json.load(open(path)) if os.path.exists(path) else {}


def fail(error, cause):
    print(json.dumps({"Error": f"CloudFormation.{error}", "Cause": cause}))
    sys.exit(1)


def save():
    with open(path, "w") as f:
        json.dump(stacks, f)


name = params.get("StackName", "")
stack_id = f"arn:aws:cloudformation:{region}:123456789012:stack/{name}/0a1b2c3d"
if action == "createStack":
    if name in stacks:
        fail("AlreadyExistsException", f"Stack [{name}] already exists")
    stacks[name] = {"status": "CREATE_IN_PROGRESS", "polls": 0}
    save()
    print(json.dumps({"StackId": stack_id}))
elif action == "updateStack":
    if name not in stacks:
        fail("CloudFormationException", f"Stack [{name}] does not exist")
    fail("CloudFormationException", "No updates are to be performed.")
elif action == "describeStacks":
    if name not in stacks:
        fail("CloudFormationException", f"Stack with id {name} does not exist")
    stack = stacks[name]
    stack["polls"] += 1
    if stack["status"].endswith("_IN_PROGRESS") and stack["polls"] > 1:
        stack["status"] = stack["status"].replace("_IN_PROGRESS", "_COMPLETE")
    save()
    print(json.dumps({"Stacks": [{"StackName": name, "StackId": stack_id, "StackStatus": stack["status"]}]}))
elif action == "deleteStack":
    stacks.pop(name, None)
    save()
    print("{}")
else:
    fail("CloudFormationException", f"unsupported action {action}")
