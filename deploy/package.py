"""Build what AWS runs: `chalice package` plus stocksync's own template pieces.

    .venv/bin/python deploy/package.py --stage prod [--format sam|terraform ...] [--out DIR]

`make package STAGE=prod` runs it. Offline but for PyPI (chalice downloads Lambda
wheels); no AWS account or credentials needed.

sam        OUT/sam/sam.json + deployment.zip: the SAM template chalice generates,
           merged with deploy/sam-resources.json (queue, dead-letter queue, log groups,
           queue permissions, secret ARNs, API tokens, throttling, gateway responses,
           outputs); each function's role gets its own policy (function_policy), and
           --subnet-ids / --security-group-ids replace the stage's VPC placeholders.
           deploy/deploy.sh deploys it.
terraform  OUT/terraform/: chalice.tf.json + deployment.zip, with
           deploy/terraform/stocksync.tf.json (the same resources and variables),
           deploy/terraform/stocksync_override.tf.json, and two generated files:
           stocksync_stage.tf.json (the name prefix) and
           stocksync_functions_override.tf.json (each function's environment and its
           code from S3). Two edits that an override file cannot make are made to
           chalice.tf.json itself: each queue's event source mapping waits for the
           queue permissions of its function's role (`depends_on`), and chalice's unused
           `null_data_source` goes (it would need the null provider). Files terraform
           itself leaves there (state, .terraform/) are kept.

The bundle is checked before anything is written: every requirement and every
pinned constraint present, nothing chalice could not install, unzipped size within
Lambda's limit.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SAM_MERGE_TEMPLATE = DEPLOY / "sam-resources.json"
TERRAFORM_DIR = DEPLOY / "terraform"
CONSTRAINTS = DEPLOY / "lambda-constraints.txt"
DEFAULT_OUT = ROOT / ".stocksync" / "package"

APP_NAME = "stocksync"
# Lambda: 250 MB for the function and its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT = 262_144_000

# What a SAM `Ref` in a function's environment (sam-resources.json) is in Terraform.
TERRAFORM_REFS = {
    "DayQueue": "${aws_sqs_queue.days.url}",
    "DatabaseSecretArn": "${var.database_secret_arn}",
    "TushareSecretArn": "${var.tushare_secret_arn}",
    "ApiTokens": "${var.api_tokens}",
    "PublicRead": "${var.public_read}",
    "CorsAllowOrigins": "${var.cors_allow_origins}",
    "SecretsRevision": "${var.secrets_revision}",
    "NotifyTopic": "${aws_sns_topic.notices.arn}",
    "NotifyWebhooks": "${var.notify_webhooks}",
    "NotifySecret": "${var.notify_secret_arn}",
}
# What a SAM `Fn::Sub` variable (sam-resources.json) is in Terraform.
TERRAFORM_SUBS = {
    "${WebsocketAPI}": "${aws_apigatewayv2_api.websocket_api.id}",
    "${AWS::Region}": "${data.aws_region.chalice.name}",
    "${AWS::URLSuffix}": "${data.aws_partition.chalice.dns_suffix}",
}
# Actions the roles need that AWS lets no policy scope to a resource: they stay on "*"
# (tests/test_deploy.py fails on any other "Resource": "*").
NO_RESOURCE_SCOPE = {
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* actions support no resource-level permissions; "
                                     "Lambda's VPC guide requires it on \"*\"",
    "ec2:DescribeSubnets": "EC2 Describe* actions support no resource-level permissions",
}
# The first statement of deploy/iam/lambda-base.json: chalice needs a policy file, and this
# one denies everything, so a function deployed without deploy/package.py can do nothing.
PLACEHOLDER_SID = "ReplacedPerFunctionByDeployPackage"


class PackageError(Exception):
    pass


def logical_id(function_name: str) -> str:
    """The SAM resource chalice makes for a function (`api_handler` is `APIHandler`)."""
    if function_name == "api_handler":
        return "APIHandler"
    from chalice.utils import to_cfn_resource_name
    return to_cfn_resource_name(function_name)


def _chalice_env() -> dict[str, str]:
    env = dict(os.environ)
    # Only for the download: requirements.txt stays what the local .venv installs.
    env["PIP_CONSTRAINT"] = " ".join(filter(None, [str(CONSTRAINTS), env.get("PIP_CONSTRAINT")]))
    # chalice wants a region to start a session; the templates use the deploy's own
    # (${AWS::Region}, data.aws_region), so any one does.
    if not env.get("AWS_DEFAULT_REGION"):
        env["AWS_DEFAULT_REGION"] = env.get("AWS_REGION") or "us-east-1"
    return env


def run_chalice_package(stage: str, out: Path, pkg_format: str) -> str:
    args = ["package", "--stage", stage, "--pkg-format", pkg_format]
    if pkg_format == "cloudformation":
        args += ["--merge-template", str(SAM_MERGE_TEMPLATE)]
    command = [sys.executable, "-c",
               "import sys; from chalice.cli import main; sys.argv[0] = 'chalice'; sys.exit(main())",
               *args, str(out)]
    done = subprocess.run(command, cwd=ROOT, env=_chalice_env(), capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise PackageError(f"chalice package failed ({done.returncode}):\n{output}")
    if "Could not install dependencies" in output:
        raise PackageError("chalice left dependencies out of deployment.zip:\n" + output)
    return output


def _requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0])
    return names


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def check_bundle(zip_path: Path) -> dict[str, Any]:
    """What AWS would refuse or what would fail at import, found before a deploy."""
    with zipfile.ZipFile(zip_path) as bundle:
        infos = bundle.infolist()
    names = [info.filename for info in infos]
    dists = {_normalize(top.removesuffix(".dist-info").rsplit("-", 1)[0])
             for top in {n.split("/", 1)[0] for n in names} if top.endswith(".dist-info")}
    wanted = _requirement_names(ROOT / "requirements.txt") + _requirement_names(CONSTRAINTS)
    missing = [name for name in wanted if _normalize(name) not in dists]
    if "app.py" not in names or not any(n.startswith("chalicelib/") for n in names):
        missing.append("app.py and chalicelib/")
    unzipped = sum(info.file_size for info in infos)
    report = {"zip_bytes": zip_path.stat().st_size, "unzipped_bytes": unzipped,
              "files": len(names), "missing": missing}
    if missing:
        raise PackageError(f"{zip_path} lacks {', '.join(missing)}")
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise PackageError(f"{zip_path} unzips to {unzipped:,} bytes; Lambda takes "
                           f"{LAMBDA_UNZIPPED_LIMIT:,}")
    return report


def _package_checked(stage: str, out: Path, pkg_format: str) -> dict[str, Any]:
    output = run_chalice_package(stage, out, pkg_format)
    try:
        return check_bundle(out / "deployment.zip")
    except PackageError:
        if "Reusing existing deployment package" not in output:
            raise
    # A bundle chalice cached before (say, by a plain `chalice package` without
    # lambda-constraints.txt): drop the cache and build it once more.
    for cached in (ROOT / ".chalice" / "deployments").glob("*.zip"):
        cached.unlink()
    shutil.rmtree(out)
    run_chalice_package(stage, out, pkg_format)
    return check_bundle(out / "deployment.zip")


def build_sam(stage: str, out: Path, vpc: dict[str, list[str]] | None = None) -> dict[str, Any]:
    target = out / "sam"
    if target.exists():
        shutil.rmtree(target)
    report = _package_checked(stage, target, "cloudformation")
    template_path = target / "sam.json"
    template = json.loads(template_path.read_text(encoding="utf-8"))
    apply_sam_policies(template, vpc or stage_vpc(stage))
    template_path.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    report["template"] = str(template_path)
    return report


def build_terraform(stage: str, out: Path, vpc: dict[str, list[str]] | None = None) -> dict[str, Any]:
    target = out / "terraform"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stocksync-tf-") as tmp:
        fresh = Path(tmp) / "terraform"
        report = _package_checked(stage, fresh, "terraform")
        config = json.loads((fresh / "chalice.tf.json").read_text(encoding="utf-8"))
        ours = json.loads((TERRAFORM_DIR / "stocksync.tf.json").read_text(encoding="utf-8"))
        _drop_null_provider(config)
        _wait_for_queue_permissions(config, ours)
        (fresh / "chalice.tf.json").write_text(json.dumps(config, indent=2) + "\n",
                                               encoding="utf-8")
        for static in TERRAFORM_DIR.glob("*.tf.json"):
            shutil.copy(static, fresh / static.name)
        _write_json(fresh / "stocksync_stage.tf.json", {
            "//": "Generated by deploy/package.py.",
            "locals": {"stocksync_stage": stage, "stocksync_prefix": f"{APP_NAME}-{stage}"}})
        _write_json(fresh / "stocksync_functions_override.tf.json",
                    functions_override(config, vpc or stage_vpc(stage)))
        for generated in fresh.iterdir():
            shutil.copy(generated, target / generated.name)
    report["template"] = str(target / "chalice.tf.json")
    return report


def _drop_null_provider(config: dict[str, Any]) -> None:
    """chalice declares a `null_data_source` nothing reads; it would make `terraform init`
    fetch the null provider for nothing (and the data source is deprecated)."""
    data = config.get("data", {})
    without = {k: v for k, v in config.items() if k != "data"}
    if "null_data_source" in data and "null_data_source" not in json.dumps(without):
        del data["null_data_source"]
        config.get("terraform", {}).get("required_providers", {}).pop("null", None)


def _wait_for_queue_permissions(config: dict[str, Any], ours: dict[str, Any]) -> None:
    """Lambda checks the role when a mapping is created: it must already be allowed to
    receive from the queue (SAM: the functions' DependsOn in sam-resources.json)."""
    policies = ours.get("resource", {}).get("aws_iam_role_policy", {})
    mappings = config["resource"].get("aws_lambda_event_source_mapping", {})
    for mapping in mappings.values():
        function = re.fullmatch(r"\$\{aws_lambda_function\.(\w+)\.arn\}", mapping["function_name"])
        policy = f"{function.group(1)}_queue" if function else None
        if policy not in policies:
            raise PackageError(f"no queue permissions for the mapping to {mapping['function_name']}")
        mapping["depends_on"] = [f"aws_iam_role_policy.{policy}"]


def terraform_value(value: Any) -> str:
    """A SAM environment value of sam-resources.json (`Ref`, or `Fn::Join` of them) in Terraform."""
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in TERRAFORM_REFS:
        return TERRAFORM_REFS[value["Ref"]]
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(terraform_value(part) for part in parts)
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = value["Fn::Sub"]
        for sam, terraform in TERRAFORM_SUBS.items():
            text = text.replace(sam, terraform)
        if re.search(r"\$\{(?!aws_|data\.)", text):
            raise PackageError(f"no Terraform value for {value!r}")
        return text
    raise PackageError(f"no Terraform value for {value!r}")


def _sam_environment(name: str) -> dict[str, Any]:
    sam = json.loads(SAM_MERGE_TEMPLATE.read_text(encoding="utf-8"))["Resources"]
    return (sam.get(logical_id(name), {}).get("Properties", {})
            .get("Environment", {}).get("Variables", {}))


def _refs(value: Any) -> list[str]:
    """The parameters a SAM value refers to (SECRETS_ARN: one or a Fn::Join of several)."""
    if isinstance(value, dict) and "Ref" in value:
        return [value["Ref"]]
    if isinstance(value, dict) and "Fn::Join" in value:
        return [ref for part in value["Fn::Join"][1] for ref in _refs(part)]
    return []


def function_policy(name: str, fmt: str, vpc: dict[str, list[str]] | None) -> dict[str, Any]:
    """The one policy of a function's role: its own log group, the secrets its SECRETS_ARN
    names (so the environment and the permission cannot drift apart), and, in a VPC, the
    network interfaces Lambda makes for it."""
    sam = fmt == "sam"
    log_group = ({"Fn::GetAtt": [f"{logical_id(name)}Logs", "Arn"]} if sam
                 else "${aws_cloudwatch_log_group.%s.arn}:*" % name)
    statements: list[dict[str, Any]] = [{
        "Sid": "WriteOwnLogs", "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [log_group]}]
    environment = _sam_environment(name)
    secrets = _refs(environment.get("SECRETS_ARN"))
    if secrets:
        statements.append({
            "Sid": "ReadOwnSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [{"Ref": ref} if sam else TERRAFORM_REFS[ref] for ref in secrets]})
    # A function given the notices topic may publish to it, and only to it.
    topics = _refs(environment.get("NOTIFY_SNS_TOPIC_ARN"))
    if topics:
        statements.append({
            "Sid": "PublishNotices", "Effect": "Allow", "Action": ["sns:Publish"],
            "Resource": [{"Ref": ref} if sam else TERRAFORM_REFS[ref] for ref in topics]})
    # A function given the WebSocket API's management endpoint may post to its connections.
    if "LIVE_MANAGEMENT_URL" in environment:
        stage = _api_stage()
        connections = ({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                   "${WebsocketAPI}/%s/POST/@connections/*" % stage} if sam else
                       "${aws_apigatewayv2_api.websocket_api.execution_arn}/%s/POST/@connections/*" % stage)
        statements.append({
            "Sid": "PushToOwnWebSocketConnections", "Effect": "Allow",
            "Action": ["execute-api:ManageConnections"], "Resource": [connections]})
    if vpc:
        arn = ("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:" if sam else
               "arn:${data.aws_partition.chalice.partition}:ec2:${data.aws_region.chalice.name}:"
               "${data.aws_caller_identity.chalice.account_id}:")

        def ec2(resource: str) -> Any:
            return {"Fn::Sub": arn + resource} if sam else arn + resource
        interfaces = ec2("network-interface/*")
        statements += [
            {"Sid": "CreateNetworkInterfacesInOwnSubnets", "Effect": "Allow",
             "Action": ["ec2:CreateNetworkInterface"],
             "Resource": [interfaces] + [ec2(f"subnet/{i}") for i in vpc["subnet_ids"]]
             + [ec2(f"security-group/{i}") for i in vpc["security_group_ids"]]},
            {"Sid": "ManageNetworkInterfaces", "Effect": "Allow",
             "Action": ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses"], "Resource": [interfaces]},
            {"Sid": "DescribeNetworkNoResourceScope", "Effect": "Allow",
             "Action": sorted(NO_RESOURCE_SCOPE), "Resource": "*"},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def _api_stage() -> str:
    """The API Gateway stage name (`api_gateway_stage`), which the WebSocket API shares."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
    return config.get("api_gateway_stage", "api")


def stage_vpc(stage: str, subnet_ids: list[str] | None = None,
              security_group_ids: list[str] | None = None) -> dict[str, list[str]] | None:
    """The stage's VPC (config.json), with ids given on the command line in place of its own."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
    stage_config = config.get("stages", {}).get(stage, {})
    own_subnets = stage_config.get("subnet_ids") or config.get("subnet_ids")
    own_groups = stage_config.get("security_group_ids") or config.get("security_group_ids")
    if not own_subnets and not own_groups:
        if subnet_ids or security_group_ids:
            raise PackageError(f"stage {stage} runs outside a VPC: no subnet or security group to set")
        return None
    subnets, groups = subnet_ids or own_subnets, security_group_ids or own_groups
    if not (subnets and groups):
        raise PackageError(f"stage {stage}: a VPC needs both subnet_ids and security_group_ids")
    return {"subnet_ids": list(subnets), "security_group_ids": list(groups)}


def apply_sam_policies(template: dict[str, Any], vpc: dict[str, list[str]] | None) -> None:
    """Each function's role gets its own policy in place of the placeholder (and its VPC ids)."""
    resources = template["Resources"]
    for function_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        name = _function_name(resource)
        role = resources[resource["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        role["Policies"] = [{"PolicyName": "own-resources",
                             "PolicyDocument": function_policy(name, "sam", vpc)}]
        if vpc:
            resource["Properties"]["VpcConfig"] = {"SubnetIds": vpc["subnet_ids"],
                                                   "SecurityGroupIds": vpc["security_group_ids"]}
    if PLACEHOLDER_SID in json.dumps(template):
        raise PackageError("a role kept the placeholder policy of deploy/iam/lambda-base.json")


def _function_name(resource: dict[str, Any]) -> str:
    handler = resource["Properties"]["Handler"]
    return "api_handler" if handler == "app.app" else handler.split(".", 1)[1]


def functions_override(chalice_config: dict[str, Any],
                       vpc: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Per function: its code from S3 (the zip is over Lambda's direct-upload limit),
    chalice's environment plus what sam-resources.json gives the same function, its VPC
    ids, and its role's own policy in place of the placeholder."""
    overrides: dict[str, Any] = {}
    policies: dict[str, Any] = {}
    for name, function in chalice_config["resource"]["aws_lambda_function"].items():
        variables = {**function.get("environment", {}).get("variables", {}),
                     **{key: terraform_value(value) for key, value in _sam_environment(name).items()}}
        overrides[name] = {
            "filename": None,
            "s3_bucket": "${aws_s3_object.deployment.bucket}",
            "s3_key": "${aws_s3_object.deployment.key}",
            "environment": {"variables": variables},
        }
        if vpc:
            overrides[name]["vpc_config"] = vpc
        role_policy = function["role"].split(".")[1] if "role" in function else f"{name}_role"
        if role_policy not in chalice_config["resource"].get("aws_iam_role_policy", {}):
            raise PackageError(f"chalice made no role policy {role_policy} for {name}")
        policies[role_policy] = {"policy": json.dumps(function_policy(name, "terraform", vpc))}
    return {"//": "Generated by deploy/package.py from chalice.tf.json and deploy/sam-resources.json.",
            "resource": {"aws_lambda_function": overrides, "aws_iam_role_policy": policies}}


def _ids(text: str | None) -> list[str] | None:
    ids = [i.strip() for i in (text or "").split(",") if i.strip()]
    for i in ids:
        if not re.fullmatch(r"(subnet|sg)-[0-9a-f]{8,17}", i):
            raise PackageError(f"not a subnet or security group id: {i!r}")
    return ids or None


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--format", dest="formats", action="append",
                        choices=["sam", "terraform"], help="repeatable; default sam")
    parser.add_argument("--out", type=Path, help="default .stocksync/package/STAGE")
    parser.add_argument("--subnet-ids", help="comma-separated: the VPC subnets, in place of the stage's")
    parser.add_argument("--security-group-ids", help="comma-separated: in place of the stage's")
    args = parser.parse_args(argv)
    out = (args.out or DEFAULT_OUT / args.stage).resolve()
    builders = {"sam": build_sam, "terraform": build_terraform}
    try:
        vpc = stage_vpc(args.stage, _ids(args.subnet_ids), _ids(args.security_group_ids))
        for fmt in args.formats or ["sam"]:
            started = time.monotonic()
            report = builders[fmt](args.stage, out, vpc)
            print(f"{fmt}: {report['template']} ({time.monotonic() - started:.1f} s); "
                  f"deployment.zip {report['zip_bytes'] / 1e6:.1f} MB, "
                  f"{report['unzipped_bytes'] / 1e6:.1f} MB unzipped, {report['files']} files")
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
