"""Creates an API key for a tenant of a deployed stack and prints it once.

    python -m local.api_key --tenant acme --return-hosts shop.acme.com,acme.com
        [--merchant-name "Acme Shop"] [--table NAME --usage-plan ID] [--region R]

Only the key's SHA-256 hash is stored (item `APIKEY#<hash>` / `APIKEY` in the sessions table, as in
docs/data-model.md); the key itself is printed on standard output and nowhere else, so it cannot be shown
again: a lost key is replaced by a new one. The tenant also gets an API Gateway key in the API's usage plan,
which its requests are throttled on (the authorizer names it as their usageIdentifierKey); that key is no
secret of the tenant's and is stored with the hash. Without `--table` / `--usage-plan`, they are the
`SessionsTableName` / `UsagePlanId` outputs of the CloudFormation stack (`--stack`, default
checkout-sessions). AWS credentials and the Region come from the usual places unless `--region` is given.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "checkout_core"
if str(LAYER) not in sys.path:
    sys.path.append(str(LAYER))

from checkout_core.api_keys import hash_api_key, new_api_key  # noqa: E402 - the layer is put on the path above

DEFAULT_STACK = "checkout-sessions"
TABLE_OUTPUT = "SessionsTableName"
USAGE_PLAN_OUTPUT = "UsagePlanId"
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MERCHANT_NAME_MAX = 100
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class UsageError(Exception):
    pass


def parse_return_hosts(text: str) -> list[str]:
    """The comma-separated allowlist of return URL hosts: bare host names, lower-cased, no duplicates."""
    hosts: list[str] = []
    for raw in text.split(","):
        host = raw.strip().lower().rstrip(".")
        if not host:
            continue
        if len(host) > 253 or not all(HOST_LABEL.match(label) for label in host.split(".")):
            raise UsageError(f"not a host name: {raw.strip()!r} (give hosts only, e.g. shop.acme.com)")
        if host not in hosts:
            hosts.append(host)
    if not hosts:
        raise UsageError("--return-hosts needs at least one host")
    return hosts


def parse_merchant_name(text: str | None) -> str | None:
    """The display name, spaces trimmed: printable text of 1 to 100 characters, or None when not given."""
    if text is None:
        return None
    name = " ".join(text.split())
    if not 1 <= len(name) <= MERCHANT_NAME_MAX or not name.isprintable():
        raise UsageError(f"not a display name: {text!r} (1-{MERCHANT_NAME_MAX} printable characters)")
    return name


def stack_output(cloudformation: Any, stack_name: str, key: str, option: str) -> str:
    """An output of a deployed stack (the sessions table, the usage plan)."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stacks[0].get("Outputs", []) if stacks else []:
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise UsageError(f"stack {stack_name} has no {key} output; pass {option}")


def usage_plan_key(apigateway: Any, usage_plan_id: str, tenant: str) -> str:
    """A new API Gateway key for `tenant` in the usage plan; its value is what the authorizer returns."""
    created = apigateway.create_api_key(name=f"{tenant}-{new_api_key()[-12:]}", enabled=True)
    apigateway.create_usage_plan_key(usagePlanId=usage_plan_id, keyId=created["id"], keyType="API_KEY")
    return str(created["value"])


def api_key_item(
    key_hash: str,
    tenant: str,
    return_hosts: Sequence[str],
    created_at: datetime,
    usage_key: str,
    merchant_name: str | None = None,
) -> dict[str, Any]:
    """The stored item, in DynamoDB's attribute-value form."""
    merchant = {"merchantName": {"S": merchant_name}} if merchant_name else {}
    return {
        **merchant,
        "pk": {"S": f"APIKEY#{key_hash}"},
        "sk": {"S": "APIKEY"},
        "entity": {"S": "APIKEY"},
        "tenant": {"S": tenant},
        "usageKey": {"S": usage_key},
        "returnHosts": {"L": [{"S": host} for host in return_hosts]},
        "createdAt": {
            "S": created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        },
    }


def create_api_key(
    dynamodb: Any,
    table_name: str,
    tenant: str,
    return_hosts: Sequence[str],
    usage_key: str,
    now: datetime | None = None,
    merchant_name: str | None = None,
) -> str:
    """Stores the hash of a fresh key for `tenant` and returns the key (the only time it exists in clear)."""
    key = new_api_key()
    created = now or datetime.now(UTC)
    dynamodb.put_item(
        TableName=table_name,
        Item=api_key_item(hash_api_key(key), tenant, return_hosts, created, usage_key, merchant_name),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return key


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.api_key", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", required=True, help="tenant id the key authenticates as")
    parser.add_argument(
        "--return-hosts", required=True, help="comma-separated hosts allowed in returnUrl, e.g. shop.acme.com"
    )
    parser.add_argument(
        "--merchant-name", help="the name the hosted page shows customers (1-100 characters, e.g. Acme Shop)"
    )
    parser.add_argument("--table", help="sessions table name (default: the stack's SessionsTableName output)")
    parser.add_argument(
        "--usage-plan", help="API Gateway usage plan id (default: the stack's UsagePlanId output)"
    )
    parser.add_argument(
        "--stack", default=DEFAULT_STACK, help=f"stack to read the table from ({DEFAULT_STACK})"
    )
    parser.add_argument("--region", help="AWS Region (default: from the environment or profile)")
    args = parser.parse_args(argv)

    try:
        tenant = args.tenant.strip()
        if not TENANT.match(tenant):
            raise UsageError(f"not a tenant id: {args.tenant!r} (1-64 of A-Z a-z 0-9 _ . -)")
        return_hosts = parse_return_hosts(args.return_hosts)
        merchant_name = parse_merchant_name(args.merchant_name)
        if session is None:
            import boto3

            session = boto3.session.Session(region_name=args.region)
        cloudformation = session.client("cloudformation")
        table = args.table or stack_output(cloudformation, args.stack, TABLE_OUTPUT, "--table")
        plan = args.usage_plan or stack_output(cloudformation, args.stack, USAGE_PLAN_OUTPUT, "--usage-plan")
        usage_key = usage_plan_key(session.client("apigateway"), plan, tenant)
        key = create_api_key(
            session.client("dynamodb"), table, tenant, return_hosts, usage_key, merchant_name=merchant_name
        )
    except UsageError as exc:
        parser.error(str(exc))
    print(
        f"API key for tenant {tenant} (return hosts: {', '.join(return_hosts)}), "
        f"stored as a hash in {table}.\nIt is shown only now: keep it in your secret store.",
        file=sys.stderr,
    )
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
