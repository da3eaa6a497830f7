#!/usr/bin/env sh
# Runs the multi-region deployment orchestration (examples/multi-region-deploy) with no setup:
# the Lambda function and CloudFormation answer from the example's MockConfigFile, and waits run
# on the virtual clock. STEPSTONE_TEST_CASE picks another test case of the mock file
# (RollbackPath, ThrottledPath); extra arguments go to `stepstone run` (--json, --history, --stats).
set -eu
cd "$(dirname "$0")/.."
example=examples/multi-region-deploy
cargo run -q -- run "$example/deploy.asl.json" \
  --input-file "$example/input.json" \
  --mock-config "$example/mock-config.json" --test-case "${STEPSTONE_TEST_CASE:-HappyPath}" \
  --virtual-time --ephemeral \
  "$@"
