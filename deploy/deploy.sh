#!/usr/bin/env bash
# stocksync on AWS, in one command (docs/deploy.md):
#
#   deploy/deploy.sh deploy STAGE    package, upload, create/update the CloudFormation stack
#                                    stocksync-STAGE, print its outputs, run the migrations
#   deploy/deploy.sh migrate STAGE   run the migrations only (the `migrate` function)
#
# `make deploy STAGE=prod` and `make migrate STAGE=prod` call it.
#
# Needs: the AWS CLI with credentials and a region (AWS_PROFILE / AWS_REGION as usual),
# the project's .venv (make venv), and, on a stack's first deploy, its secrets:
#   STOCKSYNC_SECRET_ID       a Secrets Manager secret with JSON keys DATABASE_URL and
#                             TUSHARE_TOKEN (preferred: nothing secret on a command line), or
#   STOCKSYNC_DATABASE_URL    postgresql://user:password@host:5432/db?sslmode=require
#   STOCKSYNC_TUSHARE_TOKEN   the tushare pro token
# Later deploys keep the stack's values unless these are set again.
# Optional: ARTIFACT_BUCKET (default stocksync-artifacts-ACCOUNT-REGION, created if
# missing), STACK_NAME (default stocksync-STAGE), OUT (default .stocksync/package/STAGE),
# LOG_RETENTION_DAYS, PY (default .venv/bin/python), AWS (default aws).
set -euo pipefail
cd "$(dirname "$0")/.."

ACTION=${1:-}
STAGE=${2:-${STAGE:-dev}}
STACK=${STACK_NAME:-stocksync-$STAGE}
OUT=${OUT:-.stocksync/package/$STAGE}
PY=${PY:-.venv/bin/python}
AWS=${AWS:-aws}

die() { echo "deploy: $*" >&2; exit 1; }
say() { echo "==> $*" >&2; }

output() {  # output NAME: one output of the stack
    "$AWS" cloudformation describe-stacks --stack-name "$STACK" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

check_prerequisites() {
    command -v "$AWS" >/dev/null 2>&1 ||
        die "the AWS CLI is needed (pip install awscli, or AWS's installer for v2)"
    [ -x "$PY" ] || die "$PY not found: run 'make venv' first"
    "$AWS" sts get-caller-identity --query Account --output text >/dev/null ||
        die "no AWS credentials: set AWS_PROFILE, or run 'aws configure'"
}

region() {
    local r=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
    [ -n "$r" ] || r=$("$AWS" configure get region 2>/dev/null || true)
    [ -n "$r" ] || die "no AWS region: set AWS_REGION (for example ap-northeast-1)"
    echo "$r"
}

check_stage_config() {
    # The prod stage ships VPC placeholders: a deploy with them could only fail half way.
    "$PY" - "$STAGE" <<'EOF' || exit 1
import json, sys
stage = sys.argv[1]
config = json.load(open(".chalice/config.json"))
if stage not in config.get("stages", {}) or stage == "local":
    sys.exit(f"deploy: no stage {stage!r} to deploy in .chalice/config.json")
text = json.dumps(config["stages"][stage])
if "REPLACE_ME" in text:
    sys.exit(f"deploy: .chalice/config.json stage {stage!r} still has REPLACE_ME placeholders "
             "(subnet_ids, security_group_ids): put your VPC's ids there (docs/deploy.md)")
EOF
}

deploy() {
    check_prerequisites
    check_stage_config
    local region account bucket
    region=$(region)
    account=$("$AWS" sts get-caller-identity --query Account --output text)
    bucket=${ARTIFACT_BUCKET:-stocksync-artifacts-$account-$region}

    local params=()
    [ -n "${STOCKSYNC_SECRET_ID:-}" ] && params+=("SecretId=$STOCKSYNC_SECRET_ID")
    [ -n "${STOCKSYNC_DATABASE_URL:-}" ] && params+=("DatabaseUrl=$STOCKSYNC_DATABASE_URL")
    [ -n "${STOCKSYNC_TUSHARE_TOKEN:-}" ] && params+=("TushareToken=$STOCKSYNC_TUSHARE_TOKEN")
    [ -n "${LOG_RETENTION_DAYS:-}" ] && params+=("LogRetentionDays=$LOG_RETENTION_DAYS")
    if ! "$AWS" cloudformation describe-stacks --stack-name "$STACK" >/dev/null 2>&1; then
        [ -n "${STOCKSYNC_SECRET_ID:-}" ] ||
            { [ -n "${STOCKSYNC_DATABASE_URL:-}" ] && [ -n "${STOCKSYNC_TUSHARE_TOKEN:-}" ]; } ||
            die "first deploy of $STACK: set STOCKSYNC_SECRET_ID, or STOCKSYNC_DATABASE_URL and STOCKSYNC_TUSHARE_TOKEN"
    fi

    say "packaging stage $STAGE into $OUT/sam"
    "$PY" deploy/package.py --stage "$STAGE" --format sam --out "$OUT"

    if ! "$AWS" s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
        say "creating the artifact bucket s3://$bucket"
        "$AWS" s3 mb "s3://$bucket" --region "$region" >/dev/null
    fi
    say "uploading deployment.zip to s3://$bucket/$STACK/"
    "$AWS" cloudformation package --region "$region" \
        --template-file "$OUT/sam/sam.json" --s3-bucket "$bucket" --s3-prefix "$STACK" \
        --output-template-file "$OUT/sam/packaged.yaml" >/dev/null

    say "deploying stack $STACK in $region"
    local overrides=()
    [ ${#params[@]} -gt 0 ] && overrides=(--parameter-overrides "${params[@]}")
    "$AWS" cloudformation deploy --region "$region" \
        --template-file "$OUT/sam/packaged.yaml" --stack-name "$STACK" \
        --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
        --no-fail-on-empty-changeset --tags project=stocksync "stage=$STAGE" \
        ${overrides[@]+"${overrides[@]}"}

    "$AWS" cloudformation describe-stacks --region "$region" --stack-name "$STACK" \
        --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output table
    migrate
}

migrate() {
    local fn result error
    fn=$(output MigrateFunctionName)
    if [ -z "$fn" ] || [ "$fn" = "None" ]; then
        die "stack $STACK has no MigrateFunctionName output: deploy it first"
    fi
    result="$OUT/migrate-result.json"
    mkdir -p "$OUT"
    say "applying migrations with $fn"
    error=$("$AWS" lambda invoke --function-name "$fn" --cli-read-timeout 330 \
        --query FunctionError --output text "$result")
    cat "$result" >&2; echo >&2
    [ -z "$error" ] || [ "$error" = "None" ] ||
        die "migrate failed ($error): see the log group /aws/lambda/$fn"
}

case "$ACTION" in
    deploy) deploy ;;
    migrate) check_prerequisites; migrate ;;
    *) die "usage: deploy/deploy.sh deploy|migrate STAGE" ;;
esac
