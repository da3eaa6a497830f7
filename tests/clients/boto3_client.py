"""boto3 against `stepstone serve`: what a Python test suite of a Step Functions user does.

Usage: boto3_client.py ENDPOINT PHASE
  PHASE "main": state machines, executions, histories, errors, callbacks.
  PHASE "activities": an activity worker (poll, heartbeat, success, failure).
  PHASE "versions": versions and aliases.
  PHASE "children": states:startExecution child executions.
  PHASE "map-runs": a distributed Map's Map Run, described and listed.
  PHASE "before-kill": starts an execution that waits, prints its ARN.
  PHASE "after-restart ARN": waits for that execution to succeed.
  PHASE "two-nodes OTHER_ENDPOINT": two `serve --shared` nodes on one database, each
    answering for the executions the other drives.
Exits non-zero (an assertion) on any difference from what AWS answers.
"""

import json
import sys
import threading
import time

import boto3
from botocore.config import Config

endpoint, phase = sys.argv[1], sys.argv[2]


def client(url):
    return boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
    )


sfn = client(endpoint)
ROLE = "arn:aws:iam::123456789012:role/stepstone"


def wait_for(arn, status="SUCCEEDED", seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            assert described["status"] == status, described
            return described
        time.sleep(0.05)
    raise AssertionError(f"{arn} still RUNNING after {seconds} s")


# A task waiting for its token (the route `lambda:invoke.waitForTaskToken=cat` only delivers it).
CALLBACK = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "approver", "Payload": {"token.$": "$$.Task.Token"}},
            "End": True,
        }
    },
}


def create_quick(client):
    """An EXPRESS state machine that adds `a` and `b`: its ARN."""
    definition = {"StartAt": "Add", "States": {"Add": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": True}}}
    return client.create_state_machine(name="quick", type="EXPRESS", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]


def token_of(client, execution):
    """The task token of the execution's first task waiting for one, from its history."""
    deadline = time.time() + 20
    while time.time() < deadline:
        for event in client.get_execution_history(executionArn=execution)["events"]:
            details = event.get("taskScheduledEventDetails")
            if details:
                return json.loads(details["parameters"])["Payload"]["token"]
        time.sleep(0.05)
    raise AssertionError(f"no task scheduled in {execution}")


def error_code(call, **kwargs):
    try:
        call(**kwargs)
    except sfn.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} did not fail")


def main():
    hello = {
        "StartAt": "Greet",
        "States": {
            "Greet": {
                "Type": "Pass",
                "Parameters": {"greeting.$": "States.Format('hello, {}', $.who)"},
                "ResultPath": "$.out",
                "Next": "Pause",
            },
            "Pause": {"Type": "Wait", "Seconds": 1, "End": True},
        },
    }
    created = sfn.create_state_machine(name="hello", definition=json.dumps(hello), roleArn=ROLE)
    arn = created["stateMachineArn"]
    assert arn == "arn:aws:states:us-east-1:123456789012:stateMachine:hello", arn
    # The same request again answers the same machine; another definition is refused.
    assert sfn.create_state_machine(name="hello", definition=json.dumps(hello), roleArn=ROLE)["stateMachineArn"] == arn
    other = dict(hello, Comment="changed")
    assert error_code(sfn.create_state_machine, name="hello", definition=json.dumps(other), roleArn=ROLE) == "StateMachineAlreadyExists"
    assert error_code(sfn.create_state_machine, name="bad", definition='{"StartAt": "X", "States": {}}', roleArn=ROLE) == "InvalidDefinition"
    assert error_code(sfn.create_state_machine, name="a b", definition=json.dumps(hello), roleArn=ROLE) == "InvalidName"

    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert described["name"] == "hello" and described["type"] == "STANDARD", described
    assert json.loads(described["definition"]) == hello
    assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["hello"]
    assert error_code(sfn.describe_state_machine, stateMachineArn=arn + "-nope") == "StateMachineDoesNotExist"

    validated = sfn.validate_state_machine_definition(definition='{"StartAt": "X", "States": {}}')
    assert validated["result"] == "FAIL" and validated["diagnostics"], validated

    started = sfn.start_execution(stateMachineArn=arn, name="first", input=json.dumps({"who": "ops"}))
    execution = started["executionArn"]
    assert execution == "arn:aws:states:us-east-1:123456789012:execution:hello:first", execution
    assert error_code(sfn.start_execution, stateMachineArn=arn, name="first", input="{}") == "ExecutionAlreadyExists"
    assert error_code(sfn.start_execution, stateMachineArn=arn, name="no/slash", input="{}") == "InvalidName"
    assert error_code(sfn.start_execution, stateMachineArn=arn, input="{not json") == "InvalidExecutionInput"
    too_big = json.dumps({"pad": "p" * (256 * 1024)})
    assert error_code(sfn.start_execution, stateMachineArn=arn, input=too_big) == "ValidationException"
    done = wait_for(execution)
    assert json.loads(done["output"]) == {"who": "ops", "out": {"greeting": "hello, ops"}}, done

    history = sfn.get_execution_history(executionArn=execution)["events"]
    types = [e["type"] for e in history]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded", types
    reverse = sfn.get_execution_history(executionArn=execution, reverseOrder=True)["events"]
    assert [e["type"] for e in reverse] == types[::-1]
    # In pages of 2, both ways, as boto3's paginator reads them.
    pages = sfn.get_paginator("get_execution_history")
    for reverse_order, expected in ((False, history), (True, reverse)):
        paged = pages.paginate(
            executionArn=execution, reverseOrder=reverse_order, PaginationConfig={"PageSize": 2}
        )
        chunks = [page["events"] for page in paged]
        assert all(len(chunk) <= 2 for chunk in chunks) and len(chunks) > 2, chunks
        assert [e["id"] for chunk in chunks for e in chunk] == [e["id"] for e in expected]

    # Several at once; one stopped while it waits.
    many = [sfn.start_execution(stateMachineArn=arn, input=json.dumps({"who": str(i)}))["executionArn"] for i in range(20)]
    sfn.stop_execution(executionArn=many[0], error="Ops.Stop", cause="by the test")
    assert wait_for(many[0], "ABORTED")["error"] == "Ops.Stop"
    for e in many[1:]:
        wait_for(e)
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(listed) == 21, len(listed)
    aborted = sfn.list_executions(stateMachineArn=arn, statusFilter="ABORTED")["executions"]
    assert [e["executionArn"] for e in aborted] == [many[0]]
    assert error_code(sfn.describe_execution, executionArn=execution + "-nope") == "ExecutionDoesNotExist"

    # The stopped one goes on from where it stopped; a succeeded one cannot.
    redriven = sfn.redrive_execution(executionArn=many[0])
    assert "redriveDate" in redriven, redriven
    done = wait_for(many[0])
    assert done["redriveCount"] == 1, done
    assert error_code(sfn.redrive_execution, executionArn=execution) == "ExecutionNotRedrivable"

    # A task waiting for its token, completed through the API.
    gate = sfn.create_state_machine(name="gate", definition=json.dumps(CALLBACK), roleArn=ROLE)["stateMachineArn"]
    waiting = sfn.start_execution(stateMachineArn=gate, name="w")["executionArn"]
    token = token_of(sfn, waiting)
    assert error_code(sfn.send_task_success, taskToken=token + "00", output="{}") in ("TaskDoesNotExist", "InvalidToken")
    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
    assert json.loads(wait_for(waiting)["output"]) == {"approved": True}

    # Pages, as boto3's paginators read them.
    pages = list(sfn.get_paginator("list_executions").paginate(stateMachineArn=arn, PaginationConfig={"PageSize": 6}))
    assert [len(p["executions"]) for p in pages] == [6, 6, 6, 3], [len(p["executions"]) for p in pages]
    assert len({e["executionArn"] for p in pages for e in p["executions"]}) == 21
    events = [e for p in sfn.get_paginator("get_execution_history").paginate(executionArn=execution, PaginationConfig={"PageSize": 2}) for e in p["events"]]
    assert [e["type"] for e in events] == types
    assert error_code(sfn.list_executions, stateMachineArn=arn, nextToken="forged") == "InvalidToken"

    # The state machine an execution ran, and tags.
    for_execution = sfn.describe_state_machine_for_execution(executionArn=execution)
    assert for_execution["stateMachineArn"] == arn and json.loads(for_execution["definition"]) == hello
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "platform"}, {"key": "tier", "value": "1"}])
    sfn.untag_resource(resourceArn=arn, tagKeys=["tier"])
    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "platform"}]

    # EXPRESS, synchronously (boto3 needs inject_host_prefix=False for the sync- host).
    express = create_quick(sfn)
    synced = sfn.start_sync_execution(stateMachineArn=express, input=json.dumps({"a": 2, "b": 3}))
    assert synced["status"] == "SUCCEEDED" and json.loads(synced["output"]) == {"sum": 5}, synced
    assert ":express:quick:" in synced["executionArn"], synced
    assert error_code(sfn.start_sync_execution, stateMachineArn=arn, input="{}") == "StateMachineTypeNotSupported"
    sfn.delete_state_machine(stateMachineArn=express)

    # TestState: one state on its own; values come back as JSON text.
    tested = sfn.test_state(
        definition=json.dumps({"Type": "Pass", "Parameters": {"x.$": "$.a"}, "ResultPath": "$.r", "Next": "After"}),
        roleArn=ROLE,
        input=json.dumps({"a": 1}),
        inspectionLevel="DEBUG",
    )
    assert tested["status"] == "SUCCEEDED" and tested["nextState"] == "After", tested
    assert json.loads(tested["output"]) == {"a": 1, "r": {"x": 1}}
    assert json.loads(tested["inspectionData"]["afterParameters"]) == {"x": 1}
    retried = sfn.test_state(
        definition=json.dumps({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f"},
                               "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2}], "End": True}),
        roleArn=ROLE,
        mock={"errorOutput": {"error": "Boom", "cause": "mocked"}},
        inspectionLevel="DEBUG",
    )
    assert retried["status"] == "RETRIABLE" and retried["error"] == "Boom", retried

    # An operation Stepstone does not answer is AWS's UnknownOperationException.
    assert error_code(sfn.update_map_run, mapRunArn=gate, maxConcurrency=1) == "UnknownOperationException"
    sfn.delete_state_machine(stateMachineArn=gate)
    assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["hello"]


def activities():
    """An activity worker, as one is written against AWS: poll, heartbeat, answer."""
    arn = sfn.create_activity(name="approve")["activityArn"]
    assert arn == "arn:aws:states:us-east-1:123456789012:activity:approve", arn
    assert sfn.create_activity(name="approve")["activityArn"] == arn
    assert sfn.describe_activity(activityArn=arn)["name"] == "approve"
    assert [a["name"] for a in sfn.list_activities()["activities"]] == ["approve"]
    assert error_code(sfn.get_activity_task, activityArn=arn + "-nope") == "ActivityDoesNotExist"
    definition = {
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": arn,
                "HeartbeatSeconds": 30,
                "TimeoutSeconds": 60,
                "ResultPath": "$.approval",
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name="approval", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    # Activities are not state machines.
    assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["approval"]
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"change": 42}))[
        "executionArn"
    ]
    task = sfn.get_activity_task(activityArn=arn, workerName="reviewer-1")
    assert json.loads(task["input"]) == {"change": 42}, task
    sfn.send_task_heartbeat(taskToken=task["taskToken"])
    sfn.send_task_success(taskToken=task["taskToken"], output=json.dumps({"approved": True}))
    out = json.loads(wait_for(execution)["output"])
    assert out == {"change": 42, "approval": {"approved": True}}, out
    events = sfn.get_execution_history(executionArn=execution)["events"]
    types = [e["type"] for e in events]
    assert types == [
        "ExecutionStarted",
        "TaskStateEntered",
        "ActivityScheduled",
        "ActivityStarted",
        "ActivitySucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ], types
    scheduled = events[2]["activityScheduledEventDetails"]
    assert scheduled["resource"] == arn, scheduled
    assert scheduled["timeoutInSeconds"] == 60 and scheduled["heartbeatInSeconds"] == 30, scheduled
    assert json.loads(scheduled["input"]) == {"change": 42}, scheduled
    assert events[3]["activityStartedEventDetails"] == {"workerName": "reviewer-1"}, events[3]
    assert json.loads(events[4]["activitySucceededEventDetails"]["output"]) == {"approved": True}

    # A worker already polling gets the task as soon as it is scheduled (long poll).
    got = {}
    worker = threading.Thread(
        target=lambda: got.update(sfn.get_activity_task(activityArn=arn, workerName="early"))
    )
    worker.start()
    time.sleep(0.3)
    second = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"change": 43}))[
        "executionArn"
    ]
    worker.join(timeout=30)
    assert json.loads(got["input"]) == {"change": 43}, got
    sfn.send_task_failure(taskToken=got["taskToken"], error="Rejected", cause="not today")
    failed = wait_for(second, "FAILED")
    assert failed["error"] == "Rejected" and failed["cause"] == "not today", failed
    types = [e["type"] for e in sfn.get_execution_history(executionArn=second)["events"]]
    assert "ActivityFailed" in types and "TaskFailed" not in types, types
    # Its token is spent.
    assert (
        error_code(sfn.send_task_success, taskToken=got["taskToken"], output="{}")
        == "TaskDoesNotExist"
    )

    # A worker that takes the task and goes silent: HeartbeatSeconds ends it.
    silent = {"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": arn,
        "HeartbeatSeconds": 1, "End": True}}}
    silent_arn = sfn.create_state_machine(
        name="silent", definition=json.dumps(silent), roleArn=ROLE
    )["stateMachineArn"]
    third = sfn.start_execution(stateMachineArn=silent_arn)["executionArn"]
    taken = sfn.get_activity_task(activityArn=arn, workerName="sleepy")
    assert taken.get("taskToken"), taken
    timed_out = wait_for(third, "FAILED")
    assert timed_out["error"] == "States.HeartbeatTimeout", timed_out
    types = [e["type"] for e in sfn.get_execution_history(executionArn=third)["events"]]
    assert "ActivityTimedOut" in types, types

    sfn.delete_activity(activityArn=arn)
    assert sfn.list_activities()["activities"] == []
    assert error_code(sfn.describe_activity, activityArn=arn) == "ActivityDoesNotExist"


def versions():
    """Versions and aliases, as Terraform (`publish = true`) and CDK use them."""
    one = {"StartAt": "V", "States": {"V": {"Type": "Pass", "Result": "one", "End": True}}}
    two = {"StartAt": "V", "States": {"V": {"Type": "Pass", "Result": "two", "End": True}}}
    created = sfn.create_state_machine(
        name="versioned", definition=json.dumps(one), roleArn=ROLE, publish=True,
        versionDescription="first",
    )
    arn, v1 = created["stateMachineArn"], created["stateMachineVersionArn"]
    assert v1 == arn + ":1", created
    # The same revision published again is the same version.
    assert sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == v1
    updated = sfn.update_state_machine(
        stateMachineArn=arn, definition=json.dumps(two), publish=True, versionDescription="second"
    )
    v2 = updated["stateMachineVersionArn"]
    assert v2 == arn + ":2", updated
    assert updated["revisionId"] == sfn.describe_state_machine(stateMachineArn=arn)["revisionId"]
    first = sfn.describe_state_machine(stateMachineArn=v1)
    assert json.loads(first["definition"]) == one and first["description"] == "first", first
    listed = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in listed] == [v2, v1], listed
    # Versions and aliases are not state machines of their own.
    assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["versioned"]

    def output_of(target):
        execution = sfn.start_execution(stateMachineArn=target)["executionArn"]
        described = wait_for(execution)
        # DescribeExecution names the version and the alias it went through.
        if target == v1:
            assert described["stateMachineVersionArn"] == v1, described
            assert "stateMachineAliasArn" not in described, described
        if target.endswith(":prod"):
            assert described["stateMachineAliasArn"] == target, described
            assert described["stateMachineVersionArn"] in (v1, v2), described
        if target == arn:
            assert "stateMachineVersionArn" not in described, described
        return json.loads(described["output"])

    assert output_of(arn) == "two"
    assert output_of(v1) == "one"
    alias = sfn.create_state_machine_alias(
        name="prod", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}]
    )["stateMachineAliasArn"]
    assert alias == arn + ":prod", alias
    assert output_of(alias) == "one"
    sfn.update_state_machine_alias(
        stateMachineAliasArn=alias,
        routingConfiguration=[{"stateMachineVersionArn": v2, "weight": 100}],
    )
    assert output_of(alias) == "two"
    described = sfn.describe_state_machine_alias(stateMachineAliasArn=alias)
    assert described["routingConfiguration"] == [{"stateMachineVersionArn": v2, "weight": 100}]
    assert [a["stateMachineAliasArn"] for a in sfn.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]] == [alias]
    assert error_code(sfn.delete_state_machine_version, stateMachineVersionArn=v2) == "ConflictException"
    assert (
        error_code(
            sfn.update_state_machine_alias,
            stateMachineAliasArn=alias,
            routingConfiguration=[
                {"stateMachineVersionArn": v1, "weight": 50},
                {"stateMachineVersionArn": v2, "weight": 40},
            ],
        )
        == "ValidationException"
    )
    sfn.delete_state_machine_alias(stateMachineAliasArn=alias)
    sfn.delete_state_machine_version(stateMachineVersionArn=v1)
    listed = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in listed] == [v2], listed
    # A number is never given twice.
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(one))
    assert sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == arn + ":3"
    sfn.delete_state_machine(stateMachineArn=arn)
    assert error_code(sfn.describe_state_machine, stateMachineArn=v2) == "StateMachineDoesNotExist"
    assert sfn.list_state_machines()["stateMachines"] == []


def children():
    """states:startExecution: child executions, waited for (.sync, .sync:2) or not."""
    double = {"StartAt": "Double", "States": {"Double": {"Type": "Pass",
        "Parameters": {"n.$": "States.MathAdd($.n, $.n)"}, "End": True}}}
    refuse = {"StartAt": "No", "States": {"No": {"Type": "Fail", "Error": "Nope", "Cause": "child says no"}}}
    child = sfn.create_state_machine(name="child", definition=json.dumps(double), roleArn=ROLE)["stateMachineArn"]
    bad = sfn.create_state_machine(name="bad", definition=json.dumps(refuse), roleArn=ROLE)["stateMachineArn"]
    start = "arn:aws:states:::states:startExecution"
    parent = {"StartAt": "Sync2", "States": {
        "Sync2": {"Type": "Task", "Resource": start + ".sync:2",
            "Parameters": {"StateMachineArn": child, "Input": {"n.$": "$.n"}},
            "ResultSelector": {"n.$": "$.Output.n", "status.$": "$.Status"},
            "ResultPath": "$.sync2", "Next": "Sync"},
        "Sync": {"Type": "Task", "Resource": start + ".sync",
            "Parameters": {"StateMachineArn": child, "Input": {"n": 5}, "Name": "named-child"},
            "ResultSelector": {"output.$": "$.Output", "name.$": "$.Name"},
            "ResultPath": "$.sync", "Next": "Fire"},
        "Fire": {"Type": "Task", "Resource": start,
            "Parameters": {"StateMachineArn": child, "Input": "{\"n\": 1}"},
            "ResultSelector": {"arn.$": "$.ExecutionArn"}, "ResultPath": "$.fired", "Next": "Bad"},
        "Bad": {"Type": "Task", "Resource": start + ".sync", "Parameters": {"StateMachineArn": bad},
            "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.caught", "Next": "Done"}],
            "End": True},
        "Done": {"Type": "Succeed"}}}
    machine = sfn.create_state_machine(name="parent", definition=json.dumps(parent), roleArn=ROLE)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"n": 21}))["executionArn"]
    out = json.loads(wait_for(execution)["output"])
    assert out["sync2"] == {"n": 42, "status": "SUCCEEDED"}, out
    assert json.loads(out["sync"]["output"]) == {"n": 10} and out["sync"]["name"] == "named-child", out
    assert out["fired"]["arn"].startswith("arn:aws:states:us-east-1:123456789012:execution:child:"), out
    assert out["caught"]["Error"] == "States.TaskFailed", out
    assert json.loads(out["caught"]["Cause"])["Error"] == "Nope", out
    children = sfn.list_executions(stateMachineArn=child)["executions"]
    assert len(children) == 3 and "named-child" in [e["name"] for e in children], children
    # A missing state machine fails the task with the integration's error name.
    missing = {"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": start,
        "Parameters": {"StateMachineArn": child + "-nope"}, "End": True}}}
    orphan = sfn.create_state_machine(name="orphan", definition=json.dumps(missing), roleArn=ROLE)["stateMachineArn"]
    failed = wait_for(sfn.start_execution(stateMachineArn=orphan)["executionArn"], "FAILED")
    assert failed["error"] == "StepFunctions.StateMachineDoesNotExistException", failed
    # A state machine that starts itself: the chain ends at 100 levels, and each parent fails.
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:itself"
    itself = {"StartAt": "Again", "States": {"Again": {"Type": "Task", "Resource": start + ".sync:2",
        "Parameters": {"StateMachineArn": arn}, "End": True}}}
    sfn.create_state_machine(name="itself", definition=json.dumps(itself), roleArn=ROLE)
    top = wait_for(sfn.start_execution(stateMachineArn=arn)["executionArn"], "FAILED", seconds=120)
    assert top["error"] == "States.TaskFailed", top
    chain = sfn.list_executions(stateMachineArn=arn, maxResults=1000)["executions"]
    assert len(chain) == 101, len(chain)
    errors = [sfn.describe_execution(executionArn=e["executionArn"]).get("error") for e in chain]
    assert errors.count("StepFunctions.ExecutionLimitExceededException") == 1, errors
    # Each level quotes its child's failure; the cause stays within AWS's 32,768 characters.
    assert len(top["cause"]) <= 32768, len(top["cause"])
    # StartExecution is idempotent for a running execution given the same name and input.
    hold = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    held = sfn.create_state_machine(name="held", definition=json.dumps(hold), roleArn=ROLE)["stateMachineArn"]
    first = sfn.start_execution(stateMachineArn=held, name="twice", input='{"a": 1}')
    again = sfn.start_execution(stateMachineArn=held, name="twice", input='{"a": 1}')
    assert again["executionArn"] == first["executionArn"], (first, again)
    assert again["startDate"] == first["startDate"], (first, again)
    assert error_code(sfn.start_execution, stateMachineArn=held, name="twice", input='{"a": 2}') \
        == "ExecutionAlreadyExists"
    sfn.stop_execution(executionArn=first["executionArn"])
    assert error_code(sfn.start_execution, stateMachineArn=held, name="twice", input='{"a": 1}') \
        == "ExecutionAlreadyExists"
    # Stopping a parent stops the child its .sync task waits for.
    waiter = {"StartAt": "Wait", "States": {"Wait": {"Type": "Task", "Resource": start + ".sync",
        "Parameters": {"StateMachineArn": held, "Name": "held-child"}, "End": True}}}
    waiting = sfn.create_state_machine(name="waiter", definition=json.dumps(waiter), roleArn=ROLE)["stateMachineArn"]
    parent_run = sfn.start_execution(stateMachineArn=waiting)["executionArn"]
    held_child = held.replace(":stateMachine:held", ":execution:held:held-child")
    deadline = time.time() + 30
    while True:
        try:
            if sfn.describe_execution(executionArn=held_child)["status"] == "RUNNING":
                break
        except sfn.exceptions.ExecutionDoesNotExist:
            pass
        assert time.time() < deadline, "the child did not start"
        time.sleep(0.05)
    sfn.stop_execution(executionArn=parent_run, error="Operator", cause="enough")
    assert sfn.describe_execution(executionArn=parent_run)["status"] == "ABORTED"
    wait_for(held_child, "ABORTED")


def before_kill():
    slow = {"StartAt": "Long", "States": {"Long": {"Type": "Wait", "Seconds": 3, "Next": "Done"}, "Done": {"Type": "Pass", "Result": "resumed", "End": True}}}
    arn = sfn.create_state_machine(name="slow", definition=json.dumps(slow), roleArn=ROLE)["stateMachineArn"]
    # An activity task queued for a worker that has not come yet.
    activity = sfn.create_activity(name="later")["activityArn"]
    waiting = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": activity, "End": True}}}
    worked = sfn.create_state_machine(name="worked", definition=json.dumps(waiting), roleArn=ROLE)["stateMachineArn"]
    sfn.start_execution(stateMachineArn=worked, name="queued", input=json.dumps({"job": 1}))
    print(sfn.start_execution(stateMachineArn=arn, name="survivor")["executionArn"])


def after_restart(arn):
    names = sorted(m["name"] for m in sfn.list_state_machines()["stateMachines"])
    assert names == ["slow", "worked"], names
    assert json.loads(wait_for(arn)["output"]) == "resumed"
    # The activity and its queued task survived the kill: a worker gets the task now.
    activity = sfn.list_activities()["activities"][0]["activityArn"]
    task = sfn.get_activity_task(activityArn=activity, workerName="after-restart")
    assert json.loads(task["input"]) == {"job": 1}, task
    sfn.send_task_success(taskToken=task["taskToken"], output='"done"')
    queued = arn.replace(":execution:slow:survivor", ":execution:worked:queued")
    assert json.loads(wait_for(queued)["output"]) == "done"


def two_nodes(other_endpoint):
    """This node (A) and another (B) share one PostgreSQL store: an execution B started and
    drives is described, read, called back and stopped through A, and a worker polling A
    works B's activity task."""
    other = client(other_endpoint)
    gate = sfn.create_state_machine(name="gate", definition=json.dumps(CALLBACK), roleArn=ROLE)["stateMachineArn"]
    # The state machine A made is B's too.
    assert other.describe_state_machine(stateMachineArn=gate)["name"] == "gate"
    run = other.start_execution(stateMachineArn=gate, name="on-b", input=json.dumps({"who": "b"}))["executionArn"]
    assert sfn.describe_execution(executionArn=run)["status"] == "RUNNING"
    token = token_of(sfn, run)
    # Callbacks through A reach B's driver.
    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output=json.dumps({"approved": "through A"}))
    assert json.loads(wait_for(run)["output"]) == {"approved": "through A"}
    assert json.loads(other.describe_execution(executionArn=run)["output"]) == {"approved": "through A"}
    assert error_code(sfn.send_task_success, taskToken=token, output="{}") == "TaskDoesNotExist"
    # A name is taken across nodes.
    assert error_code(sfn.start_execution, stateMachineArn=gate, name="on-b", input=json.dumps({"who": "a"})) == "ExecutionAlreadyExists"
    # StopExecution through A stops what B drives.
    held = other.start_execution(stateMachineArn=gate, name="stopped-through-a")["executionArn"]
    token_of(sfn, held)
    sfn.stop_execution(executionArn=held, error="Halt", cause="from node A")
    stopped = wait_for(held, "ABORTED")
    assert stopped["error"] == "Halt" and stopped["cause"] == "from node A", stopped
    assert error_code(sfn.stop_execution, executionArn=held) == "ExecutionNotRunning"
    types = [e["type"] for e in other.get_execution_history(executionArn=held)["events"]]
    assert types.count("ExecutionAborted") == 1 and types[-1] == "ExecutionAborted", types
    # An activity task queued by B's execution is taken by a worker polling A, and answered
    # through A.
    activity = sfn.create_activity(name="approve")["activityArn"]
    work = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": activity, "HeartbeatSeconds": 30, "End": True}}}
    worked = sfn.create_state_machine(name="worked", definition=json.dumps(work), roleArn=ROLE)["stateMachineArn"]
    run = other.start_execution(stateMachineArn=worked, name="activity-on-b", input=json.dumps({"job": 7}))["executionArn"]
    task = sfn.get_activity_task(activityArn=activity, workerName="worker-on-a")
    assert json.loads(task["input"]) == {"job": 7}, task
    sfn.send_task_heartbeat(taskToken=task["taskToken"])
    sfn.send_task_success(taskToken=task["taskToken"], output=json.dumps({"done": "on a"}))
    assert json.loads(wait_for(run)["output"]) == {"done": "on a"}
    events = other.get_execution_history(executionArn=run)["events"]
    started = [e for e in events if e["type"] == "ActivityStarted"]
    assert len(started) == 1, [e["type"] for e in events]
    assert started[0]["activityStartedEventDetails"]["workerName"] == "worker-on-a", started
    # An EXPRESS state machine made on A runs synchronously on B.
    express = create_quick(sfn)
    synced = other.start_sync_execution(stateMachineArn=express, input=json.dumps({"a": 2, "b": 3}))
    assert synced["status"] == "SUCCEEDED" and json.loads(synced["output"]) == {"sum": 5}, synced


def map_runs():
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "Label": "Waves",
                "MaxConcurrency": 2,
                "ToleratedFailureCount": 1,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Check",
                    "States": {
                        "Check": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$.fail", "IsPresent": True, "Next": "Broken"}],
                            "Default": "Pause",
                        },
                        "Broken": {"Type": "Fail", "Error": "Item.Broken", "Cause": "broken"},
                        "Pause": {"Type": "Wait", "Seconds": 1, "End": True},
                    },
                },
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name="fan", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    items = [{"id": 1}, {"id": 2, "fail": True}, {"id": 3}, {"id": 4}]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(items))["executionArn"]
    # While it runs: RUNNING, with children running (2 at once) and others pending.
    deadline = time.time() + 10
    while True:
        runs = sfn.list_map_runs(executionArn=arn)["mapRuns"]
        if runs:
            break
        assert time.time() < deadline, "no Map Run listed"
        time.sleep(0.05)
    assert len(runs) == 1, runs
    run = runs[0]
    map_run = run["mapRunArn"]
    assert ":mapRun:fan/Waves:" in map_run, map_run
    assert run["executionArn"] == arn
    assert run["stateMachineArn"].endswith(":stateMachine:fan/Waves"), run
    running = sfn.describe_map_run(mapRunArn=map_run)
    assert running["status"] == "RUNNING", running
    assert running["maxConcurrency"] == 2, running
    assert running["toleratedFailureCount"] == 1, running
    assert running["itemCounts"]["total"] == 4, running
    assert running["itemCounts"]["running"] <= 2, running
    wait_for(arn)
    done = sfn.describe_map_run(mapRunArn=map_run)
    assert done["status"] == "SUCCEEDED", done
    counts = done["itemCounts"]
    assert (counts["succeeded"], counts["failed"], counts["running"], counts["pending"]) == (
        3,
        1,
        0,
        0,
    ), counts
    assert done["executionCounts"] == counts
    assert done["stopDate"] >= done["startDate"]
    assert "stopDate" in sfn.list_map_runs(executionArn=arn)["mapRuns"][0]
    # Its children are executions of their own: listed by Map Run, described, with histories.
    children = sfn.list_executions(mapRunArn=map_run)["executions"]
    assert len(children) == 4, children
    assert sorted(c["status"] for c in children) == ["FAILED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"], children
    assert all(":execution:fan/Waves:" in c["executionArn"] for c in children), children
    assert all(c["mapRunArn"] == map_run and "stopDate" in c for c in children), children
    failed = [c for c in children if c["status"] == "FAILED"][0]
    described = sfn.describe_execution(executionArn=failed["executionArn"])
    assert described["status"] == "FAILED", described
    assert described["error"] == "Item.Broken" and described["cause"] == "broken", described
    assert json.loads(described["input"]) == {"id": 2, "fail": True}, described
    history = sfn.get_execution_history(executionArn=failed["executionArn"])["events"]
    assert [e["type"] for e in history] == [
        "ExecutionStarted",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "FailStateEntered",
        "ExecutionFailed",
    ], history
    assert [e["id"] for e in history] == [1, 2, 3, 4, 5], history
    ok = [c for c in children if c["status"] == "SUCCEEDED"][0]
    done_child = sfn.describe_execution(executionArn=ok["executionArn"])
    assert json.loads(done_child["output"]) == json.loads(done_child["input"]), done_child
    waited = sfn.get_execution_history(executionArn=ok["executionArn"])["events"]
    assert [e["type"] for e in waited][-3:] == ["WaitStateEntered", "WaitStateExited", "ExecutionSucceeded"], waited
    missing = map_run.rsplit(":", 1)[0] + ":00000000-0000-4000-8000-000000000000"
    assert error_code(sfn.describe_map_run, mapRunArn=missing) == "ResourceNotFound"
    assert error_code(sfn.list_map_runs, executionArn=arn + "x") == "ExecutionDoesNotExist"


if phase == "main":
    main()
elif phase == "map-runs":
    map_runs()
elif phase == "activities":
    activities()
elif phase == "versions":
    versions()
elif phase == "children":
    children()
elif phase == "before-kill":
    before_kill()
elif phase == "after-restart":
    after_restart(sys.argv[3])
elif phase == "two-nodes":
    two_nodes(sys.argv[3])
else:
    raise SystemExit(f"unknown phase {phase}")
