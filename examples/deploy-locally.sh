#!/usr/bin/env sh
# Runs the multi-region deployment orchestration locally: the Lambda function and CloudFormation
# are played by the scripts in examples/handlers, and waits run on the virtual clock.
# Extra arguments go to `stepstone run` (try --json, --history, --stats).
set -eu
cd "$(dirname "$0")/.."
STEPSTONE_EXAMPLE_STATE="$(mktemp -d)"
export STEPSTONE_EXAMPLE_STATE
trap 'rm -rf "$STEPSTONE_EXAMPLE_STATE"' EXIT
cfn="python3 examples/handlers/cloudformation.py"
cargo run -q -- run examples/multi-region-deploy.asl.json \
  --input-file examples/multi-region-deploy.input.json \
  --virtual-time \
  --task "arn:aws:states:::lambda:invoke=python3 examples/handlers/prepare_region.py" \
  --task "arn:aws:states:::aws-sdk:cloudformation:createStack=$cfn createStack" \
  --task "arn:aws:states:::aws-sdk:cloudformation:updateStack=$cfn updateStack" \
  --task "arn:aws:states:::aws-sdk:cloudformation:describeStacks=$cfn describeStacks" \
  --task "arn:aws:states:::aws-sdk:cloudformation:deleteStack=$cfn deleteStack" \
  "$@"
