"""Deployable to AWS as it stands: everything about a deploy that can be checked offline.

`deploy/package.py` builds the SAM and Terraform packages once per module (chalice
downloads Lambda wheels from PyPI; its cache in .chalice/deployments makes later
builds take about a second). The tests then read the templates, expand SAM into
CloudFormation with aws-sam-translator, lint both with cfn-lint, validate the
Terraform configuration where terraform and its AWS provider are installed, import
the app from the Lambda bundle itself, and run deploy/deploy.sh against a stand-in
`aws` command. No AWS account is used, and none of the local services either.
"""
from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))
_spec = importlib.util.spec_from_file_location("stocksync_deploy_package", ROOT / "deploy" / "package.py")
deploy_package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deploy_package)

# Every function the app defines, by chalice name and SAM logical id.
FUNCTIONS = {
    "api_handler": "APIHandler",
    "sync_day": "SyncDay",
    "dead_letter_day": "DeadLetterDay",
    "sweep_stuck_days": "SweepStuckDays",
    "migrate": "Migrate",
    # Pushed progress: the WebSocket API's handlers (chalice names them after the route).
    "websocket_connect": "WebsocketConnect",
    "websocket_message": "WebsocketMessage",
    "websocket_disconnect": "WebsocketDisconnect",
}
# Connections all functions may hold at once (docs/deploy.md): the smallest RDS
# classes allow several times this; the rest is for psql, migrations by hand, RDS.
DB_CONNECTION_BUDGET = 20
# Which queue each function may touch, and how (SAM: sam-resources.json; Terraform:
# deploy/terraform/stocksync.tf.json).
QUEUE_ACCESS = {
    "APIHandler": {"DayQueue": {"sqs:SendMessage", "sqs:GetQueueUrl"}},
    # SendMessage: a worker that finds the database down hands its day to a fresh, delayed copy.
    "SyncDay": {"DayQueue": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                             "sqs:ChangeMessageVisibility", "sqs:SendMessage", "sqs:GetQueueUrl"}},
    "DeadLetterDay": {"DeadLetterQueue": {"sqs:ReceiveMessage", "sqs:DeleteMessage",
                                          "sqs:GetQueueAttributes"}},
    # GetQueueAttributes: an empty queue under a quiet job means its messages are lost.
    "SweepStuckDays": {"DayQueue": {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}},
    "Migrate": {},
    "WebsocketConnect": {}, "WebsocketMessage": {}, "WebsocketDisconnect": {},
}
# The functions that may end a job, so send its completion notices and push its progress;
# the WebSocket message handler pushes too (its answer to a subscribe).
NOTIFIERS = {"APIHandler", "SyncDay", "DeadLetterDay", "SweepStuckDays"}
PUSHERS = NOTIFIERS | {"WebsocketMessage"}
NOTICE_ENV = {"NOTIFY_SNS_TOPIC_ARN", "NOTIFY_WEBHOOKS", "LIVE_MANAGEMENT_URL"}
# The settings each function reads that a deploy supplies (the rest: config.json). No
# secret among them: SECRETS_ARN names the secrets a function reads at cold start.
DEPLOY_ENV = {
    "APIHandler": {"SECRETS_ARN", "SQS_QUEUE_URL", "SECRETS_REVISION", "API_TOKENS", "PUBLIC_READ",
                   "CORS_ALLOW_ORIGINS", "LIVE_WEBSOCKET_URL"} | NOTICE_ENV,
    "SyncDay": {"SECRETS_ARN", "SQS_QUEUE_URL", "SECRETS_REVISION"} | NOTICE_ENV,
    "DeadLetterDay": {"SECRETS_ARN", "SQS_QUEUE_URL", "SECRETS_REVISION"} | NOTICE_ENV,
    "SweepStuckDays": {"SECRETS_ARN", "SQS_QUEUE_URL", "SECRETS_REVISION"} | NOTICE_ENV,
    "Migrate": {"SECRETS_ARN", "SECRETS_REVISION"},
    "WebsocketConnect": {"SECRETS_ARN", "SECRETS_REVISION"},
    "WebsocketMessage": {"SECRETS_ARN", "SECRETS_REVISION", "LIVE_MANAGEMENT_URL"},
    "WebsocketDisconnect": {"SECRETS_ARN", "SECRETS_REVISION"},
}
# Which secrets each function may read: the tushare token only the worker and the API (the
# audit: a calendar year not cached yet, an operator's re-check against the source).
# The webhook signing secret (NotifySecret, made by the stack) only for those that send notices.
SECRETS_OF = {"APIHandler": {"DatabaseSecretArn", "NotifySecret", "TushareSecretArn"},
              "SyncDay": {"DatabaseSecretArn", "NotifySecret", "TushareSecretArn"},
              "DeadLetterDay": {"DatabaseSecretArn", "NotifySecret"},
              "SweepStuckDays": {"DatabaseSecretArn", "NotifySecret"},
              "Migrate": {"DatabaseSecretArn"}, "WebsocketConnect": {"DatabaseSecretArn"},
              "WebsocketMessage": {"DatabaseSecretArn"}, "WebsocketDisconnect": {"DatabaseSecretArn"}}
SECRET_KEYS = {"DATABASE_URL", "TUSHARE_TOKEN", "NOTIFY_WEBHOOK_SECRET"}
# Well-formed VPC ids for the dev build (deploy.sh passes STOCKSYNC_SUBNET_IDS the same way).
DEV_SUBNETS = "subnet-0123456789abcdef0,subnet-0123456789abcdef1"
DEV_GROUPS = "sg-0123456789abcdef2"
LAMBDA_RESERVED_ENV = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                       "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME",
                       "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER",
                       "_X_AMZN_TRACE_ID", "AWS_XRAY_DAEMON_ADDRESS"}
# Lambda's python3.11 runs on Amazon Linux 2.
LAMBDA_GLIBC = (2, 26)
SECRET_ARN = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:stocksync-dev/%s-AbCdEf"
PARAMETERS = {"DatabaseSecretArn": SECRET_ARN % "database", "TushareSecretArn": SECRET_ARN % "tushare",
              "ApiTokens": "ops:operator:" + "a" * 64, "LogRetentionDays": "30"}


# --- building ----------------------------------------------------------------------

def _build(stage: str, out: Path, *formats: str, vpc: tuple[str, str] | None = None) -> float:
    started = time.monotonic()
    args = [sys.executable, str(ROOT / "deploy" / "package.py"), "--stage", stage, "--out", str(out)]
    for fmt in formats:
        args += ["--format", fmt]
    if vpc:
        args += ["--subnet-ids", vpc[0], "--security-group-ids", vpc[1]]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"deploy/package.py --stage {stage} failed:\n{done.stdout}{done.stderr}"
    return time.monotonic() - started


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("package")
    seconds = {"dev": _build("dev", out / "dev", "sam", "terraform", vpc=(DEV_SUBNETS, DEV_GROUPS)),
               "prod": _build("prod", out / "prod", "sam")}
    return {"dev": out / "dev", "prod": out / "prod", "seconds": seconds}


@pytest.fixture(scope="module")
def sam(built: dict[str, Any]) -> dict[str, Any]:
    return _load(built["dev"] / "sam" / "sam.json")


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """The SAM template as CloudFormation, as `aws cloudformation deploy` would expand it."""
    return _translate(sam)


@pytest.fixture(scope="module")
def tf_dir(built: dict[str, Any]) -> Path:
    return built["dev"] / "terraform"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _translate(sam_template: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(sam_template)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":  # what `cloudformation package` does
            resource["Properties"]["CodeUri"] = "s3://artifacts/stocksync-dev/deployment.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "ap-northeast-1"
    try:
        return transform(template, dict(PARAMETERS), NoManagedPolicies())
    finally:
        if old is None:
            os.environ.pop("AWS_DEFAULT_REGION")
        else:
            os.environ["AWS_DEFAULT_REGION"] = old


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _ref_name(value: Any) -> str | None:
    """The resource a Ref / GetAtt / `${X.Arn}` Sub points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if isinstance(value.get("Fn::Sub"), str):
            found = re.fullmatch(r"\$\{(\w+)\.Arn\}", value["Fn::Sub"])
            return found.group(1) if found else None
    return None


def _env(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})


def _literal_env(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """The settings a template fixes (config.json's), without those the deploy fills in."""
    return {k: v for k, v in _env(template, logical_id).items() if isinstance(v, str)}


def test_build_reports(built: dict[str, Any]) -> None:
    """The bundle chalice made is complete and within Lambda's limits (package.py checks;
    here again on the file, with the numbers for the log)."""
    for stage in ("dev", "prod"):
        report = deploy_package.check_bundle(built[stage] / "sam" / "deployment.zip")
        assert report["unzipped_bytes"] < deploy_package.LAMBDA_UNZIPPED_LIMIT
        print(f"{stage}: built in {built['seconds'][stage]:.1f} s; zip {report['zip_bytes']:,} B, "
              f"unzipped {report['unzipped_bytes']:,} B")


def test_bundle_check_catches_what_chalice_leaves_out(tmp_path: Path) -> None:
    """chalice only warns when it cannot get a Lambda wheel (numpy >= 2.3 for python3.11)
    and ships the bundle without it; package.py refuses such a bundle."""
    def bundle(*dists: str) -> Path:
        path = tmp_path / f"{len(dists)}.zip"
        with zipfile.ZipFile(path, "w") as out:
            out.writestr("app.py", "")
            out.writestr("chalicelib/__init__.py", "")
            for dist in dists:
                out.writestr(f"{dist}.dist-info/METADATA", "")
        return path

    wanted = (deploy_package._requirement_names(ROOT / "requirements.txt")
              + deploy_package._requirement_names(deploy_package.CONSTRAINTS))
    assert "numpy" in wanted
    complete = [deploy_package._normalize(name) + "-1.0" for name in wanted]
    assert deploy_package.check_bundle(bundle(*complete))["missing"] == []
    with pytest.raises(deploy_package.PackageError, match="numpy"):
        deploy_package.check_bundle(bundle(*[d for d in complete if not d.startswith("numpy")]))


# --- .chalice/config.json ---------------------------------------------------------

def _chalice_config(stage: str, function: str):
    from chalice.config import Config
    return Config(chalice_stage=stage, function_name=function, config_from_disk=CONFIG)


def test_local_stage_keeps_chalice_local_working() -> None:
    """`chalice local --stage local` applies config.json's variables over the dev stack's:
    none may be one the stack sets."""
    env = _chalice_config("local", "api_handler").environment_variables
    stack_owned = {"DATABASE_URL", "SQS_QUEUE_URL", "SQS_ENDPOINT_URL", "AWS_REGION",
                   "TUSHARE_TOKEN", "TUSHARE_API_URL", "STALE_AFTER_S", "UNSENT_AFTER_S"}
    assert not stack_owned & set(env), env
    assert env["DB_POOL_SIZE"] == "8"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_deployed_stages_settings(stage: str) -> None:
    for function, logical_id in FUNCTIONS.items():
        config = _chalice_config(stage, function)
        assert config.lambda_timeout and config.lambda_memory_size >= 512, function
        assert config.iam_policy_file and not config.autogen_policy, function
        env = config.environment_variables
        assert not {"DATABASE_URL", "TUSHARE_TOKEN", "SQS_ENDPOINT_URL", "API_TOKENS"} & set(env), \
            f"{function}: secrets come from Secrets Manager, tokens from the template, SQS from AWS"
        assert not LAMBDA_RESERVED_ENV & set(env), function
        assert env["DB_POOL_SIZE"] == "1"
    vpc = (_chalice_config(stage, "sync_day").subnet_ids,
           _chalice_config(stage, "sync_day").security_group_ids)
    # Every deployed stage runs in a VPC, next to a private database: documented
    # placeholders, replaced by STOCKSYNC_SUBNET_IDS / _SECURITY_GROUP_IDS or by hand.
    assert all("REPLACE_ME" in i for ids in vpc for i in ids) and all(vpc)


# --- the SAM template -------------------------------------------------------------

def test_every_function_is_in_the_template(sam: dict[str, Any]) -> None:
    functions = _of_type(sam, "AWS::Serverless::Function")
    handlers = {v["Properties"]["Handler"]: k for k, v in functions.items()}
    expected = {("app.app" if name == "api_handler" else f"app.{name}"): logical_id
                for name, logical_id in FUNCTIONS.items()}
    assert handlers == expected
    # Stack stocksync-<stage>: the names chalice's Terraform gives, and the one app.py's
    # migrate docstring invokes (stocksync-<stage>-migrate).
    for name, logical_id in FUNCTIONS.items():
        function_name = functions[logical_id]["Properties"]["FunctionName"]["Fn::Sub"]
        assert function_name == "${AWS::StackName}" + ("" if name == "api_handler" else f"-{name}")


def test_day_queue_and_dead_letter_queue(sam: dict[str, Any]) -> None:
    from chalicelib.config import Settings

    days = sam["Resources"]["DayQueue"]["Properties"]
    dlq = sam["Resources"]["DeadLetterQueue"]["Properties"]
    worker = sam["Resources"]["SyncDay"]["Properties"]
    dead_letters = sam["Resources"]["DeadLetterDay"]["Properties"]
    assert days["VisibilityTimeout"] >= 6 * worker["Timeout"]
    assert dlq["VisibilityTimeout"] >= 6 * dead_letters["Timeout"]
    redrive = days["RedrivePolicy"]
    assert _ref_name(redrive["deadLetterTargetArn"]) == "DeadLetterQueue"
    # The app retries a day MAX_ATTEMPTS times itself; SQS gives up a little later.
    settings = Settings.from_env(_literal_env(sam, "SyncDay") | {"DATABASE_URL": ""})
    assert settings.max_attempts < redrive["maxReceiveCount"] <= 10
    assert dlq["MessageRetentionPeriod"] > days["MessageRetentionPeriod"]
    assert days["QueueName"] == {"Fn::Sub": "${AWS::StackName}-days"}
    assert dlq["QueueName"] == {"Fn::Sub": "${AWS::StackName}-days-dlq"}
    assert days["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]
    # The sweeper must not take a day waiting for its redelivery for a lost one.
    sweeper = Settings.from_env(_literal_env(sam, "SweepStuckDays") | {"DATABASE_URL": ""})
    assert sweeper.stale_after_s > days["VisibilityTimeout"] + sweeper.retry_max_s


def _app_constant(name: str) -> Any:
    """A module-level constant of app.py, read without importing the app."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"app.py has no {name}")


def test_event_source_mappings(cfn: dict[str, Any]) -> None:
    mappings = {_ref_name(m["Properties"]["FunctionName"]): m["Properties"]
                for m in _of_type(cfn, "AWS::Lambda::EventSourceMapping").values()}
    assert set(mappings) == {"SyncDay", "DeadLetterDay"}
    worker, dead_letters = mappings["SyncDay"], mappings["DeadLetterDay"]
    assert _ref_name(worker["EventSourceArn"]) == "DayQueue"
    assert _ref_name(dead_letters["EventSourceArn"]) == "DeadLetterQueue"
    assert worker["BatchSize"] == dead_letters["BatchSize"] == 1
    assert worker["ScalingConfig"]["MaximumConcurrency"] == _app_constant("WORKER_MAX_CONCURRENCY")
    assert dead_letters["ScalingConfig"]["MaximumConcurrency"] == 2  # SQS's minimum
    # Lambda checks the role when it creates a mapping: the permissions come first.
    for function in ("SyncDay", "DeadLetterDay"):
        assert f"{function}QueueAccess" in cfn["Resources"][function]["DependsOn"]


def test_sweeper_schedule(cfn: dict[str, Any]) -> None:
    rules = _of_type(cfn, "AWS::Events::Rule")
    assert len(rules) == 1
    (rule_id, rule), = rules.items()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert [_ref_name(t["Arn"]) for t in rule["Properties"]["Targets"]] == ["SweepStuckDays"]
    permissions = [p["Properties"] for p in _of_type(cfn, "AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "events.amazonaws.com"]
    assert [_ref_name(p["SourceArn"]) for p in permissions] == [rule_id]
    sweeper = cfn["Resources"]["SweepStuckDays"]["Properties"]
    assert sweeper["Timeout"] < 60 and sweeper["ReservedConcurrentExecutions"] == 1  # no overlap


def _statements_by_function(cfn: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    role_of = {logical_id: _ref_name(cfn["Resources"][logical_id]["Properties"]["Role"])
               for logical_id in FUNCTIONS.values()}
    statements: dict[str, list[dict[str, Any]]] = {}
    for function, role_id in role_of.items():
        role = cfn["Resources"][role_id]["Properties"]
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Sid": "", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
             "Action": "sts:AssumeRole"}]
        assert not role.get("ManagedPolicyArns"), function
        found = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        for policy in _of_type(cfn, "AWS::IAM::Policy").values():
            if role_id in [_ref_name(r) for r in policy["Properties"]["Roles"]]:
                found += policy["Properties"]["PolicyDocument"]["Statement"]
        statements[function] = found
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_statements(cfn: dict[str, Any]) -> None:
    for function, statements in _statements_by_function(cfn).items():
        queue_access: dict[str, set[str]] = {}
        secrets: set[str] = set()
        topics: set[str] = set()
        pushes: list[Any] = []
        for statement in statements:
            actions = _as_list(statement["Action"])
            assert statement["Effect"] == "Allow"
            assert not any(a == "*" or a.endswith(":*") for a in actions), (function, statement)
            services = {a.split(":")[0] for a in actions}
            assert len(services) == 1, (function, actions)
            resources = _as_list(statement["Resource"])
            if services == {"sqs"}:
                queue = _ref_name(statement["Resource"])
                assert queue, f"{function}: SQS actions on {statement['Resource']!r}"
                queue_access.setdefault(queue, set()).update(actions)
            elif services == {"logs"}:
                # Only the function's own log group (and its streams).
                assert resources == [{"Fn::GetAtt": [f"{function}Logs", "Arn"]}], (function, resources)
                assert set(actions) == {"logs:CreateLogStream", "logs:PutLogEvents"}
            elif services == {"secretsmanager"}:
                assert actions == ["secretsmanager:GetSecretValue"]
                secrets.update(_ref_name(r) for r in resources)
            elif services == {"sns"}:
                # Publish, to the notices topic only.
                assert actions == ["sns:Publish"], (function, actions)
                topics.update(_ref_name(r) for r in resources)
            elif services == {"execute-api"}:
                # Posting to the stack's own WebSocket API's connections, nothing else.
                assert actions == ["execute-api:ManageConnections"], (function, actions)
                pushes += resources
            else:
                assert services == {"ec2"}, (function, actions)
        assert queue_access == QUEUE_ACCESS[function], function
        assert secrets == SECRETS_OF[function], function
        assert topics == ({"NotifyTopic"} if function in NOTIFIERS else set()), function
        connections = {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                  "${WebsocketAPI}/api/POST/@connections/*"}
        assert pushes == ([connections] if function in PUSHERS else []), function


def _secret_refs(value: Any) -> set[str]:
    if isinstance(value, dict) and "Fn::Join" in value:
        return {ref for part in value["Fn::Join"][1] for ref in _secret_refs(part)}
    return {value["Ref"]}


def test_each_function_reads_its_settings_from_the_deploy(sam: dict[str, Any]) -> None:
    for logical_id, wanted in DEPLOY_ENV.items():
        env = _env(sam, logical_id)
        supplied = {k for k, v in env.items() if isinstance(v, dict)}
        assert supplied == wanted, logical_id
        assert not LAMBDA_RESERVED_ENV & set(env)
        assert not SECRET_KEYS & set(env), f"{logical_id}: a secret in the environment"
        if "SQS_QUEUE_URL" in env:
            assert env["SQS_QUEUE_URL"] == {"Ref": "DayQueue"}
        # Secrets by ARN, read at cold start: never `{{resolve:...}}` into the environment.
        assert _secret_refs(env["SECRETS_ARN"]) == SECRETS_OF[logical_id], logical_id
    parameters = sam["Parameters"]
    for name in ("DatabaseSecretArn", "TushareSecretArn"):
        assert parameters[name]["AllowedPattern"].startswith("^arn:aws")
    assert not {"DatabaseUrl", "TushareToken", "SecretId"} & set(parameters)
    text = json.dumps({k: v for k, v in sam.items() if k != "Parameters"})
    assert "resolve:secretsmanager" not in text and "postgresql://" not in text  # no secret in it


# --- least privilege: every generated policy --------------------------------------------

def _cfn_policies(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for rid, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            found += [(rid, p["PolicyDocument"]) for p in resource["Properties"].get("Policies", [])]
        elif resource["Type"] == "AWS::IAM::Policy":
            found.append((rid, resource["Properties"]["PolicyDocument"]))
    return found


def _terraform_policies(tf_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every aws_iam_role_policy as Terraform will apply it: chalice's, overridden by ours."""
    found = []
    blocks: dict[str, dict[str, Any]] = {}
    for name in ("chalice.tf.json", "stocksync.tf.json", "stocksync_override.tf.json",
                 "stocksync_functions_override.tf.json"):
        for key, block in _load(tf_dir / name).get("resource", {}).get("aws_iam_role_policy", {}).items():
            blocks[key] = {**blocks.get(key, {}), **block}
    for key, block in blocks.items():
        policy = block["policy"]
        if policy.startswith("${jsonencode("):  # HCL object syntax: read it as JSON
            policy = re.sub(r"(\w+) = ", r'"\1": ', policy[len("${jsonencode("):-2])
            policy = re.sub(r'"Resource": ([\w.]+)', r'"Resource": "${\1}"', policy)
        found.append((key, json.loads(policy)))
    return found


def _unscoped(policies: list[tuple[str, dict[str, Any]]]) -> list[str]:
    bad = []
    for owner, document in policies:
        for statement in _as_list(document["Statement"]):
            if "*" in _as_list(statement["Resource"]):
                actions = set(_as_list(statement["Action"]))
                if statement["Effect"] != "Allow" or not actions <= set(deploy_package.NO_RESOURCE_SCOPE):
                    bad.append(f"{owner}: {sorted(actions)} on *")
    return bad


def test_no_generated_policy_grants_anything_on_star_but_what_aws_cannot_scope(
        cfn: dict[str, Any], built: dict[str, Any], tf_dir: Path) -> None:
    """SAM dev (expanded), SAM prod, Terraform dev: a `"Resource": "*"` only for the actions of
    deploy/package.py's NO_RESOURCE_SCOPE, each listed with the reason AWS offers no scope."""
    prod = _translate(_load(built["prod"] / "sam" / "sam.json"))
    for label, policies in (("sam dev", _cfn_policies(cfn)), ("sam prod", _cfn_policies(prod)),
                            ("terraform dev", _terraform_policies(tf_dir))):
        assert policies, label
        assert _unscoped(policies) == [], label
        assert deploy_package.PLACEHOLDER_SID not in json.dumps(policies), label
    assert all(reason for reason in deploy_package.NO_RESOURCE_SCOPE.values())
    # The check itself catches what it is for.
    assert _unscoped([("x", {"Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents",
                                            "Resource": "*"}]})]) == ["x: ['logs:PutLogEvents'] on *"]


def test_each_role_writes_only_its_own_log_group_and_reads_only_its_secrets(tf_dir: Path) -> None:
    policies = dict(_terraform_policies(tf_dir))
    for name, logical_id in FUNCTIONS.items():
        statements = {s["Sid"]: s for s in policies[f"{name}_role"]["Statement"]}
        assert statements["WriteOwnLogs"]["Resource"] == ["${aws_cloudwatch_log_group.%s.arn}:*" % name]
        assert statements["ReadOwnSecrets"]["Resource"] == [
            deploy_package.TERRAFORM_REFS[r] for r in sorted(SECRETS_OF[logical_id])]
        subnets = statements["CreateNetworkInterfacesInOwnSubnets"]["Resource"]
        assert [r.rsplit(":", 1)[1] for r in subnets[1:]] == (
            [f"subnet/{i}" for i in DEV_SUBNETS.split(",")] + [f"security-group/{DEV_GROUPS}"])


def test_network_interface_actions_only_in_a_vpc() -> None:
    outside = deploy_package.function_policy("sync_day", "sam", None)
    assert not [s for s in outside["Statement"] if any(a.startswith("ec2:") for a in _as_list(s["Action"]))]
    inside = deploy_package.function_policy("sync_day", "sam", {"subnet_ids": ["subnet-1"],
                                                                "security_group_ids": ["sg-1"]})
    assert {a for s in inside["Statement"] for a in _as_list(s["Action"]) if a.startswith("ec2:")}
    with pytest.raises(deploy_package.PackageError):
        deploy_package.stage_vpc("local", ["subnet-0123456789abcdef0"], ["sg-0123456789abcdef0"])


def test_api_gateway_throttles_the_stage_and_the_writes(cfn: dict[str, Any], tf_dir: Path) -> None:
    stages = _of_type(cfn, "AWS::ApiGateway::Stage")
    (stage,) = stages.values()
    settings = {(m["ResourcePath"], m["HttpMethod"]): m for m in stage["Properties"]["MethodSettings"]}
    assert settings[("/*", "*")]["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert settings[("/*", "*")]["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}
    write = settings[("/~1api~1v1~1sync-status~1sync~1batch", "POST")]
    assert write["ThrottlingRateLimit"] == {"Ref": "WriteThrottleRateLimit"}
    assert ("/~1api~1v1~1sync-status~1sync~1batch~1cancel~1{task_id}", "POST") in settings
    parameters = cfn["Parameters"]
    assert parameters["ThrottleRateLimit"]["Default"] >= parameters["WriteThrottleRateLimit"]["Default"]
    terraform = _load(tf_dir / "stocksync.tf.json")["resource"]["aws_api_gateway_method_settings"]
    assert terraform["all"]["settings"]["throttling_rate_limit"] == "${var.throttle_rate_limit}"
    assert terraform["start"]["method_path"] == "api/v1/sync-status/sync/batch/POST"


def test_every_write_route_is_throttled_as_a_write(cfn: dict[str, Any], tf_dir: Path) -> None:
    """Each operator POST of the app (start, cancel, pause, resume, retry, and any later one)
    has the write throttle in the SAM template and in Terraform."""
    import app
    from chalicelib.api import access_of
    from chalicelib.auth import OPERATOR
    writes = sorted(path for path, methods in app.app.routes.items()
                    if "POST" in methods and access_of(methods["POST"].view_function) == OPERATOR)
    assert len(writes) >= 5
    (stage,) = _of_type(cfn, "AWS::ApiGateway::Stage").values()
    throttled = {m["ResourcePath"] for m in stage["Properties"]["MethodSettings"]
                 if m["HttpMethod"] == "POST" and m["ThrottlingRateLimit"] == {"Ref": "WriteThrottleRateLimit"}}
    assert throttled == {"/" + path.replace("/", "~1") for path in writes}
    terraform = _load(tf_dir / "stocksync.tf.json")["resource"]["aws_api_gateway_method_settings"]
    assert {s["method_path"] for s in terraform.values()
            if s["settings"]["throttling_rate_limit"] == "${var.write_throttle_rate_limit}"} == \
        {path.lstrip("/") + "/POST" for path in writes}


def test_notices_topic_email_subscription_and_signing_secret(sam: dict[str, Any], cfn: dict[str, Any],
                                                           tf_dir: Path) -> None:
    """Completion notices: a topic of the stack's own (an email subscription to it is the
    seed's "email when done"), a signing secret the stack generates (never a parameter, never
    in an environment), webhooks from a parameter only, and the outputs to wire receivers."""
    resources = sam["Resources"]
    assert resources["NotifyTopic"]["Type"] == "AWS::SNS::Topic"
    subscription = resources["NotifyEmailSubscription"]
    assert subscription["Condition"] == "HasNotifyEmail"
    assert subscription["Properties"] == {"TopicArn": {"Ref": "NotifyTopic"}, "Protocol": "email",
                                          "Endpoint": {"Ref": "NotifyEmail"}}
    assert cfn["Conditions"]["HasNotifyEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotifyEmail"}, ""]}]}
    generated = resources["NotifySecret"]["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "NOTIFY_WEBHOOK_SECRET" and generated["PasswordLength"] >= 32
    assert re.fullmatch(sam["Parameters"]["NotifyWebhooks"]["AllowedPattern"], "ops=https://h.example.com/x")
    assert not re.fullmatch(sam["Parameters"]["NotifyWebhooks"]["AllowedPattern"], "ops=http://h.example.com/x")
    for function in NOTIFIERS:
        env = _env(sam, function)
        assert env["NOTIFY_SNS_TOPIC_ARN"] == {"Ref": "NotifyTopic"}
        assert env["NOTIFY_WEBHOOKS"] == {"Ref": "NotifyWebhooks"}
    outputs = sam["Outputs"]
    assert outputs["NotifyTopicArn"]["Value"] == {"Ref": "NotifyTopic"}
    assert outputs["NotifySecretArn"]["Value"] == {"Ref": "NotifySecret"}
    terraform = _load(tf_dir / "stocksync.tf.json")
    assert terraform["resource"]["aws_sns_topic"]["notices"]["name"] == "${local.stocksync_prefix}-notices"
    assert terraform["resource"]["aws_sns_topic_subscription"]["notify_email"]["protocol"] == "email"
    assert "notify_secret_arn" in terraform["variable"]


def test_websocket_api_for_pushed_progress(sam: dict[str, Any], cfn: dict[str, Any], tf_dir: Path) -> None:
    routes = {r["Properties"]["RouteKey"] for r in _of_type(cfn, "AWS::ApiGatewayV2::Route").values()}
    assert routes == {"$connect", "$default", "$disconnect"}
    (stage,) = _of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["StageName"] == CONFIG["api_gateway_stage"]
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ThrottleRateLimit"}, "ThrottlingBurstLimit": {"Ref": "ThrottleBurstLimit"}}
    url = "${WebsocketAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"
    assert _env(sam, "APIHandler")["LIVE_WEBSOCKET_URL"] == {"Fn::Sub": "wss://" + url}
    for function in PUSHERS:
        assert _env(sam, function)["LIVE_MANAGEMENT_URL"] == {"Fn::Sub": "https://" + url}
    assert sam["Outputs"]["LiveWebSocketURL"]["Value"] == {"Fn::Sub": "wss://" + url}
    functions = _load(tf_dir / "stocksync_functions_override.tf.json")["resource"]["aws_lambda_function"]
    assert functions["api_handler"]["environment"]["variables"]["LIVE_WEBSOCKET_URL"] == (
        "wss://${aws_apigatewayv2_api.websocket_api.id}.execute-api.${data.aws_region.chalice.name}."
        "${data.aws_partition.chalice.dns_suffix}/api")
    override = _load(tf_dir / "stocksync_override.tf.json")["resource"]["aws_apigatewayv2_stage"]
    assert override["websocket_api_stage"]["default_route_settings"]["throttling_rate_limit"] == \
        "${var.throttle_rate_limit}"
    policies = dict(_terraform_policies(tf_dir))
    for name, logical_id in FUNCTIONS.items():
        pushes = [s for s in policies[f"{name}_role"]["Statement"] if s["Sid"] == "PushToOwnWebSocketConnections"]
        assert [s["Resource"] for s in pushes] == (
            [["${aws_apigatewayv2_api.websocket_api.execution_arn}/api/POST/@connections/*"]]
            if logical_id in PUSHERS else []), name


def test_api_gateways_own_errors_use_the_envelope(cfn: dict[str, Any]) -> None:
    """Throttling, unknown paths, oversized bodies: answered by API Gateway itself, in the
    API's envelope (SAM puts them in the REST API's definition)."""
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    assert {"THROTTLED", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    throttled = responses["THROTTLED"]
    assert throttled["statusCode"] == "429"
    assert throttled["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    for kind, response in responses.items():
        template = response["responseTemplates"]["application/json"]
        assert template.startswith('{"status":"error","code":"') and "$context.requestId" in template, kind
        assert "Access-Control-Allow-Origin" not in json.dumps(response)


def test_api_gateways_own_errors_never_quote_the_request(cfn: dict[str, Any], tf_dir: Path) -> None:
    """API Gateway's own message for an unknown path sent with an `Authorization` header
    quotes the header ("... Authorization=Bearer sst_..."): a gateway response that put
    `$context.error.message(String)` in its body would hand the caller's token back in the
    answer, to every log and cache on the way. The envelope's code and message say enough."""
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    terraform = _load(tf_dir / "stocksync.tf.json")["resource"]["aws_api_gateway_gateway_response"]
    templates = {**{f"sam {kind}": r["responseTemplates"]["application/json"] for kind, r in responses.items()},
                 **{f"terraform {name}": r["response_templates"]["application/json"]
                    for name, r in terraform.items()}}
    assert len(templates) >= 10
    for where, template in templates.items():
        assert "$context.error.message" not in template, where


def test_database_connection_budget(cfn: dict[str, Any]) -> None:
    """Each function's peak concurrency times its pool is what it can hold open."""
    bounded_by_queue = {_ref_name(m["Properties"]["FunctionName"]):
                        m["Properties"]["ScalingConfig"]["MaximumConcurrency"]
                        for m in _of_type(cfn, "AWS::Lambda::EventSourceMapping").values()}
    total = 0
    for logical_id in FUNCTIONS.values():
        props = cfn["Resources"][logical_id]["Properties"]
        bound = bounded_by_queue.get(logical_id) or props.get("ReservedConcurrentExecutions")
        assert bound, f"{logical_id}: concurrency unbounded"
        total += bound * int(props["Environment"]["Variables"]["DB_POOL_SIZE"])
    assert total <= DB_CONNECTION_BUDGET


def test_outputs(sam: dict[str, Any]) -> None:
    outputs = sam["Outputs"]
    assert outputs["MigrateFunctionName"]["Value"] == {"Ref": "Migrate"}
    assert "EndpointURL" in outputs and outputs["SyncStatusPage"]["Value"]["Fn::Sub"].endswith("/api/sync-status")


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    lint = "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", lint, "--format", "parseable", str(path)],
                          capture_output=True, text=True, timeout=300)


def test_cfn_lint_sam_and_expanded(sam: dict[str, Any], cfn: dict[str, Any], built: dict[str, Any],
                                   tmp_path: Path) -> None:
    expanded = tmp_path / "expanded.json"
    expanded.write_text(json.dumps(cfn), encoding="utf-8")
    for path in (built["dev"] / "sam" / "sam.json", expanded):
        done = _cfn_lint(path)
        assert done.returncode == 0, f"cfn-lint {path.name}:\n{done.stdout}{done.stderr}"


def test_cfn_lint_prod_once_the_vpc_is_filled_in(built: dict[str, Any], tmp_path: Path) -> None:
    text = (built["prod"] / "sam" / "sam.json").read_text(encoding="utf-8")
    placeholders = sorted(set(re.findall(r"(?:subnet|sg)-REPLACE_ME\w*", text)))
    assert placeholders, "the prod stage lost its VPC"
    for n, placeholder in enumerate(placeholders):
        text = text.replace(placeholder, placeholder.split("-")[0] + "-0123456789abcde%02d" % n)
    filled = tmp_path / "prod.json"
    filled.write_text(text, encoding="utf-8")
    done = _cfn_lint(filled)
    assert done.returncode == 0, done.stdout + done.stderr
    vpc = _translate(json.loads(text))["Resources"]["SyncDay"]["Properties"]["VpcConfig"]
    assert len(vpc["SubnetIds"]) == 2 and len(vpc["SecurityGroupIds"]) == 1


# --- the Lambda bundle -------------------------------------------------------------

def _glibc_of(tag: str) -> tuple[int, int]:
    found = re.search(r"manylinux_(\d+)_(\d+)_", tag)
    if found:
        return int(found.group(1)), int(found.group(2))
    legacy = re.search(r"manylinux(2014|2010|1)_", tag).group(1)
    return {"2014": (2, 17), "2010": (2, 12), "1": (2, 5)}[legacy]


def test_bundle_wheels_run_on_lambda(built: dict[str, Any]) -> None:
    """Every compiled wheel in the bundle loads on Lambda's glibc and processor."""
    with zipfile.ZipFile(built["dev"] / "sam" / "deployment.zip") as bundle:
        wheels = {n: bundle.read(n).decode() for n in bundle.namelist()
                  if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n)}
    compiled = 0
    for name, text in wheels.items():
        tags = re.findall(r"^Tag: (\S+)$", text, re.MULTILINE)
        linux = [t for t in tags if "linux" in t]
        assert linux or all(t.endswith("-any") for t in tags), (name, tags)
        if linux:
            compiled += 1
            assert all(t.endswith("_x86_64") for t in linux), (name, linux)
            assert min(_glibc_of(t) for t in linux) <= LAMBDA_GLIBC, f"{name}: {linux}"
    assert compiled >= 3  # numpy, pandas, psycopg2 at least


@pytest.mark.skipif(sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64"
                    or sys.platform != "linux",
                    reason="imports the python3.11 x86_64 Linux bundle: needs that interpreter")
def test_app_imports_from_the_bundle_alone(built: dict[str, Any], tmp_path: Path) -> None:
    with zipfile.ZipFile(built["dev"] / "sam" / "deployment.zip") as bundle:
        bundle.extractall(tmp_path)
    probe = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import app, numpy, pandas, psycopg2, tushare
        assert all(m.__file__.startswith({str(tmp_path)!r}) for m in (app, numpy, pandas, psycopg2, tushare))
        print(json.dumps({{"handlers": sorted(app.app.handler_map), "routes": sorted(app.app.routes),
                          "numpy": numpy.__version__}}))
    """)
    # -S -E: no site-packages and no PYTHON* variables, so only the bundle and the stdlib.
    done = subprocess.run([sys.executable, "-S", "-E", "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={"AWS_DEFAULT_REGION": "ap-northeast-1",
                                                          "PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(FUNCTIONS) - {"api_handler"} <= set(found["handlers"])
    assert all(r.startswith("/api/v1/") or r.startswith("/sync-status") for r in found["routes"])


# --- Terraform ---------------------------------------------------------------------

def test_terraform_package_structure(tf_dir: Path, sam: dict[str, Any]) -> None:
    chalice_tf = _load(tf_dir / "chalice.tf.json")
    ours = _load(tf_dir / "stocksync.tf.json")
    override = _load(tf_dir / "stocksync_override.tf.json")
    functions = _load(tf_dir / "stocksync_functions_override.tf.json")["resource"]["aws_lambda_function"]
    resources = chalice_tf["resource"]
    assert set(resources["aws_lambda_function"]) == set(FUNCTIONS) == set(functions)
    # Overrides only of what chalice made (terraform refuses others).
    for kind, blocks in override["resource"].items():
        assert set(blocks) <= set(resources[kind]), kind
    mappings = {name: {**m, **override["resource"]["aws_lambda_event_source_mapping"].get(name, {})}
                for name, m in resources["aws_lambda_event_source_mapping"].items()}
    assert {m["function_name"]: (m["event_source_arn"], m["depends_on"]) for m in mappings.values()} == {
        "${aws_lambda_function.sync_day.arn}": ("${aws_sqs_queue.days.arn}",
                                                ["aws_iam_role_policy.sync_day_queue"]),
        "${aws_lambda_function.dead_letter_day.arn}": ("${aws_sqs_queue.days_dlq.arn}",
                                                       ["aws_iam_role_policy.dead_letter_day_queue"]),
    }
    queues = ours["resource"]["aws_sqs_queue"]
    assert queues["days"]["visibility_timeout_seconds"] == sam["Resources"]["DayQueue"]["Properties"]["VisibilityTimeout"]
    assert "maxReceiveCount = 8" in queues["days"]["redrive_policy"]
    rule = {**resources["aws_cloudwatch_event_rule"]["sweep_stuck_days-event"],
            **override["resource"]["aws_cloudwatch_event_rule"]["sweep_stuck_days-event"]}
    assert rule["schedule_expression"] == "rate(1 minute)" and "stocksync_prefix" in rule["name"]
    for name, function in functions.items():
        assert function["filename"] is None and "aws_s3_object.deployment" in function["s3_key"]
        supplied = {k for k, v in function["environment"]["variables"].items() if "${" in v}
        assert supplied == DEPLOY_ENV[FUNCTIONS[name]], name
        secrets = function["environment"]["variables"]["SECRETS_ARN"]
        assert secrets == ",".join(deploy_package.TERRAFORM_REFS[r] for r in sorted(SECRETS_OF[FUNCTIONS[name]]))
        assert function["vpc_config"]["subnet_ids"] == DEV_SUBNETS.split(",")
    assert "secretsmanager_secret_version" not in json.dumps(ours)  # no secret resolved into the plan
    assert "null_data_source" not in json.dumps(chalice_tf)
    assert _load(tf_dir / "stocksync_stage.tf.json")["locals"]["stocksync_prefix"] == "stocksync-dev"
    for name, policy in ours["resource"]["aws_iam_role_policy"].items():
        function = FUNCTIONS[name.removesuffix("_queue")]
        for queue, actions in QUEUE_ACCESS[function].items():
            tf_queue = {"DayQueue": "days", "DeadLetterQueue": "days_dlq"}[queue]
            assert f"aws_sqs_queue.{tf_queue}.arn" in policy["policy"]
            assert all(f'"{a}"' in policy["policy"] for a in actions)


def _terraform() -> str:
    binary = shutil.which("terraform")
    if not binary:
        pytest.skip("terraform is not on PATH (no PyPI or Debian package ships it): "
                    "install it to validate the Terraform package")
    return binary


def _terraform_run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run([_terraform(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _terraform_copy(tf_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "terraform"
    target.mkdir()
    for path in tf_dir.iterdir():
        if path.is_file():
            (target / path.name).symlink_to(path)
    return target


def test_terraform_configuration_loads(tf_dir: Path, tmp_path: Path) -> None:
    """Without any provider: JSON, blocks, overrides that match their targets, the core version."""
    work = _terraform_copy(tf_dir, tmp_path)
    done = _terraform_run(["providers"], work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hashicorp/aws" in done.stdout and "hashicorp/null" not in done.stdout


def _provider_dir() -> str | None:
    for candidate in (os.environ.get("STOCKSYNC_TF_PLUGIN_DIR"), "/opt/tf-plugins"):
        if candidate and (Path(candidate) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return candidate
    return None


def test_terraform_validate(tf_dir: Path, tmp_path: Path) -> None:
    work = _terraform_copy(tf_dir, tmp_path)
    plugins = _provider_dir()
    init = ["init", "-backend=false", "-input=false", "-no-color"] + ([f"-plugin-dir={plugins}"] if plugins else [])
    done = _terraform_run(init, work, timeout=120)
    if done.returncode != 0:
        last = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()][-3:]
        pytest.skip("terraform validate needs the AWS provider, which is neither installed "
                    "(STOCKSYNC_TF_PLUGIN_DIR, /opt/tf-plugins) nor downloadable here: " + " ".join(last))
    done = _terraform_run(["validate", "-no-color"], work)
    assert done.returncode == 0, done.stdout + done.stderr


# --- deploy/deploy.sh, against a stand-in for the AWS CLI -----------------------------

FAKE_AWS = r'''#!/usr/bin/env python3
import json, os, shutil, sys
args = sys.argv[1:]
state = os.environ["FAKE_AWS_STATE"]
with open(state + ".log", "a") as log:
    log.write(json.dumps(args) + "\n")
deployed = os.path.exists(state + ".deployed")
def opt(name):
    return args[args.index(name) + 1]
if args[:2] == ["sts", "get-caller-identity"]:
    print("123456789012")
elif args[:2] == ["configure", "get"]:
    sys.exit(1)
elif args[:2] == ["s3api", "head-bucket"]:
    sys.exit(254)
elif args[:2] == ["s3", "mb"]:
    pass
elif args[:2] == ["cloudformation", "describe-stacks"]:
    if not deployed:
        print("Stack with id %s does not exist" % opt("--stack-name"), file=sys.stderr)
        sys.exit(254)
    if "MigrateFunctionName" in " ".join(args):
        print(opt("--stack-name") + "-migrate")
    else:
        print("| EndpointURL | https://abc.execute-api.ap-northeast-1.amazonaws.com/api/ |")
elif args[:2] == ["cloudformation", "package"]:
    shutil.copy(opt("--template-file"), opt("--output-template-file"))
elif args[:2] == ["cloudformation", "deploy"]:
    open(state + ".deployed", "w").close()
elif args[:2] == ["secretsmanager", "describe-secret"]:
    name = opt("--secret-id")
    stored = state + ".secret." + name.replace("/", "_")
    # The secrets deploy.sh makes (STACK/...) exist once stored; any other name is the user's.
    if name.startswith("stocksync-") and not os.path.exists(stored):
        print("ResourceNotFoundException", file=sys.stderr)
        sys.exit(254)
    print(name if name.startswith("arn:") else
          "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:%s-AbCdEf" % name)
elif args[:2] in (["secretsmanager", "create-secret"], ["secretsmanager", "put-secret-value"]):
    name = opt("--name") if "--name" in args else opt("--secret-id")
    source = opt("--secret-string")
    assert source.startswith("file://"), "a secret value on the command line"
    shutil.copy(source[len("file://"):], state + ".secret." + name.replace("/", "_"))
elif args[:2] == ["lambda", "invoke"]:
    with open(args[-1], "w") as out:
        json.dump({"applied": ["001_schema"]}, out)
    print("None")
else:
    print("fake aws: unexpected " + " ".join(args), file=sys.stderr)
    sys.exit(2)
'''


def _deploy_sh(tmp_path: Path, action: str, stage: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    fake = tmp_path / "aws"
    fake.write_text(FAKE_AWS, encoding="utf-8")
    fake.chmod(0o755)
    state = tmp_path / "state"
    log = state.with_suffix(".log")
    log.unlink(missing_ok=True)  # this run's calls only; the stack stays "deployed"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKSYNC_", "AWS_"))}
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "deploy.sh"), action, stage], cwd=ROOT,
        capture_output=True, text=True, timeout=900,
        env={**base, "AWS": str(fake), "PY": sys.executable, "AWS_REGION": "ap-northeast-1",
             "OUT": str(tmp_path / "out"), "FAKE_AWS_STATE": str(state), **env})
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


VPC_ENV = {"STOCKSYNC_SUBNET_IDS": DEV_SUBNETS, "STOCKSYNC_SECURITY_GROUP_IDS": DEV_GROUPS}
TOKENS = "ops:operator:" + "b" * 64


def test_deploy_script_first_deploy(tmp_path: Path, built: dict[str, Any]) -> None:
    dsn, token = "postgresql://u:Pw-secret-1@db:5432/s?sslmode=verify-full", "tushare-secret-2"
    done, calls = _deploy_sh(tmp_path, "deploy", "dev", STOCKSYNC_DATABASE_URL=dsn,
                             STOCKSYNC_TUSHARE_TOKEN=token, STOCKSYNC_API_TOKENS=TOKENS, **VPC_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    # The values went to Secrets Manager from a file, never on a command line or in the output.
    assert json.loads((tmp_path / "state.secret.stocksync-dev_database").read_text()) == {"DATABASE_URL": dsn}
    assert json.loads((tmp_path / "state.secret.stocksync-dev_tushare").read_text()) == {"TUSHARE_TOKEN": token}
    assert not any(secret in json.dumps(calls) + done.stdout + done.stderr for secret in ("Pw-secret-1", token))
    steps = [c[:2] for c in calls]
    assert steps.index(["cloudformation", "package"]) < steps.index(["cloudformation", "deploy"]) \
        < steps.index(["lambda", "invoke"])
    assert ["s3", "mb"] in steps  # the artifact bucket did not exist
    package = next(c for c in calls if c[:2] == ["cloudformation", "package"])
    assert "stocksync-artifacts-123456789012-ap-northeast-1" in package
    deploy = next(c for c in calls if c[:2] == ["cloudformation", "deploy"])
    assert deploy[deploy.index("--stack-name") + 1] == "stocksync-dev"
    capabilities = deploy[deploy.index("--capabilities") + 1:deploy.index("--capabilities") + 3]
    assert capabilities == ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    overrides = deploy[deploy.index("--parameter-overrides") + 1:]
    arn = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:stocksync-dev/%s-AbCdEf"
    assert overrides == [f"DatabaseSecretArn={arn % 'database'}", f"TushareSecretArn={arn % 'tushare'}",
                         f"ApiTokens={TOKENS}"]
    packaged = json.loads((tmp_path / "out" / "sam" / "sam.json").read_text())
    assert packaged["Resources"]["SyncDay"]["Properties"]["VpcConfig"]["SubnetIds"] == DEV_SUBNETS.split(",")
    invoke = next(c for c in calls if c[:2] == ["lambda", "invoke"])
    assert invoke[invoke.index("--function-name") + 1] == "stocksync-dev-migrate"
    assert (tmp_path / "out" / "sam" / "packaged.yaml").exists()
    assert '"applied"' in done.stderr


def test_deploy_script_refuses_what_would_fail(tmp_path: Path, built: dict[str, Any]) -> None:
    done, calls = _deploy_sh(tmp_path, "deploy", "dev", **VPC_ENV)
    assert done.returncode != 0 and "first deploy of stocksync-dev" in done.stderr
    assert not any(c[:2] in (["cloudformation", "deploy"], ["cloudformation", "package"]) for c in calls)
    done, calls = _deploy_sh(tmp_path, "deploy", "dev", STOCKSYNC_SECRET_ID="stocksync/dev", **VPC_ENV)
    assert done.returncode != 0 and "STOCKSYNC_API_TOKENS" in done.stderr  # no token: nobody could call it
    done, calls = _deploy_sh(tmp_path, "deploy", "prod", STOCKSYNC_SECRET_ID="stocksync/prod",
                             STOCKSYNC_API_TOKENS=TOKENS)
    assert done.returncode != 0 and "REPLACE_ME" in done.stderr
    assert not any(c[0] in ("cloudformation", "s3", "lambda") for c in calls)
    done, calls = _deploy_sh(tmp_path, "deploy", "local", STOCKSYNC_SECRET_ID="x")
    assert done.returncode != 0 and "no stage 'local'" in done.stderr


def test_deploy_script_secret_arns_and_migrate(tmp_path: Path, built: dict[str, Any]) -> None:
    database = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:db-AbCdEf"
    done, calls = _deploy_sh(tmp_path, "deploy", "dev", STOCKSYNC_DATABASE_SECRET=database,
                             STOCKSYNC_TUSHARE_SECRET="stocksync/dev/tushare", STOCKSYNC_API_TOKENS=TOKENS,
                             STOCKSYNC_SECRETS_REVISION="2", **VPC_ENV)
    assert done.returncode == 0, done.stderr
    deploy = next(c for c in calls if c[:2] == ["cloudformation", "deploy"])
    assert deploy[deploy.index("--parameter-overrides") + 1:] == [
        f"DatabaseSecretArn={database}",
        "TushareSecretArn=arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:stocksync/dev/tushare-AbCdEf",
        f"ApiTokens={TOKENS}", "SecretsRevision=2"]
    # A later deploy with nothing set keeps the stack's parameters.
    done, calls = _deploy_sh(tmp_path, "deploy", "dev", **VPC_ENV)
    assert done.returncode == 0, done.stderr
    deploy = [c for c in calls if c[:2] == ["cloudformation", "deploy"]][-1]
    assert "--parameter-overrides" not in deploy
    done, calls = _deploy_sh(tmp_path, "migrate", "dev")
    assert done.returncode == 0, done.stderr
    assert calls[-1][:2] == ["lambda", "invoke"]


# --- docs ----------------------------------------------------------------------------

def test_docs() -> None:
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for needed in ("make deploy STAGE=", "make migrate", "aws lambda invoke", "cfn-lint",
                   "DB_POOL_SIZE", "REPLACE_ME", "STOCKSYNC_SECRET_ID", "terraform",
                   "STOCKSYNC_DATABASE_SECRET", "STOCKSYNC_API_TOKENS", "SECRETS_ARN", "verify-full",
                   "RDS Proxy", "rds-ca", "STOCKSYNC_SUBNET_IDS", "SecretsRevision"):
        assert needed in deploy_doc, needed
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "```mermaid" in architecture
    for part in ("API Gateway", "stocksync-days", "dlq", "sweep_stuck_days", "PostgreSQL", "tushare"):
        assert part in architecture, part
