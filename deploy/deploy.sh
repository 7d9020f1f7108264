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
# the project's .venv (make venv), the VPC the functions run in, and on a stack's first
# deploy its secrets and API tokens:
#   STOCKSYNC_SUBNET_IDS, STOCKSYNC_SECURITY_GROUP_IDS   comma-separated private subnets and
#                             the functions' security group (else .chalice/config.json's)
#   STOCKSYNC_DATABASE_SECRET a Secrets Manager secret (name or ARN) {"DATABASE_URL": ...}, or
#   STOCKSYNC_DATABASE_URL    postgresql://user:password@host:5432/db?sslmode=verify-full&...,
#                             stored for you in the secret STACK/database
#   STOCKSYNC_TUSHARE_SECRET  a secret {"TUSHARE_TOKEN": ...}, or
#   STOCKSYNC_TUSHARE_TOKEN   the token, stored for you in the secret STACK/tushare
#   STOCKSYNC_API_TOKENS      name:role:sha256 entries (python -m devstack.tokens new NAME ROLE)
# Values go to Secrets Manager through a private temporary file, never on a command line;
# the functions read them at cold start by ARN. Later deploys keep the stack's values
# unless these are set again. Optional: STOCKSYNC_PUBLIC_READ (true/false),
# STOCKSYNC_CORS_ALLOW_ORIGINS, STOCKSYNC_NOTIFY_EMAIL (an address subscribed to the completion
# notices), STOCKSYNC_NOTIFY_WEBHOOKS (name=https://url pairs), STOCKSYNC_SECRETS_REVISION (change it after rotating a
# secret), STOCKSYNC_SECRET_ID (one older secret with both keys: then every function can
# read the tushare token too), ARTIFACT_BUCKET (default stocksync-artifacts-ACCOUNT-REGION,
# created if missing), STACK_NAME (default stocksync-STAGE), OUT (default
# .stocksync/package/STAGE), LOG_RETENTION_DAYS, PY (default .venv/bin/python), AWS (default aws).
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
    # The stages ship VPC placeholders: a deploy with them could only fail half way.
    "$PY" - "$STAGE" "${STOCKSYNC_SUBNET_IDS:-}" "${STOCKSYNC_SECURITY_GROUP_IDS:-}" <<'EOF' || exit 1
import json, sys
stage, subnets, groups = sys.argv[1:4]
config = json.load(open(".chalice/config.json"))
if stage not in config.get("stages", {}) or stage == "local":
    sys.exit(f"deploy: no stage {stage!r} to deploy in .chalice/config.json")
text = json.dumps(config["stages"][stage])
if "REPLACE_ME" in text and not (subnets and groups):
    sys.exit(f"deploy: .chalice/config.json stage {stage!r} still has REPLACE_ME placeholders "
             "(subnet_ids, security_group_ids): set STOCKSYNC_SUBNET_IDS and "
             "STOCKSYNC_SECURITY_GROUP_IDS, or put your VPC's ids there (docs/deploy.md)")
EOF
}

secret_arn() {  # secret_arn NAME-OR-ARN: the secret's full ARN (IAM policies need it)
    "$AWS" secretsmanager describe-secret --secret-id "$1" --query ARN --output text
}

store_secret() {  # store_secret NAME KEY, the value in $SECRET_VALUE: prints the secret's ARN
    local name=$1 key=$2 file
    file=$(mktemp)
    chmod 600 "$file"
    KEY=$key "$PY" -c 'import json, os, sys; json.dump({os.environ["KEY"]: os.environ["SECRET_VALUE"]}, open(sys.argv[1], "w"))' "$file"
    if "$AWS" secretsmanager describe-secret --secret-id "$name" >/dev/null 2>&1; then
        "$AWS" secretsmanager put-secret-value --secret-id "$name" --secret-string "file://$file" >/dev/null
    else
        "$AWS" secretsmanager create-secret --name "$name" --secret-string "file://$file" \
            --description "stocksync $key (deploy/deploy.sh)" >/dev/null
    fi
    rm -f "$file"
    secret_arn "$name"
}

deploy() {
    check_prerequisites
    check_stage_config
    local region account bucket
    region=$(region)
    account=$("$AWS" sts get-caller-identity --query Account --output text)
    bucket=${ARTIFACT_BUCKET:-stocksync-artifacts-$account-$region}

    local params=() database="" tushare=""
    if [ -n "${STOCKSYNC_DATABASE_URL:-}" ]; then
        say "storing DATABASE_URL in the secret $STACK/database"
        database=$(SECRET_VALUE=$STOCKSYNC_DATABASE_URL store_secret "$STACK/database" DATABASE_URL)
    elif [ -n "${STOCKSYNC_DATABASE_SECRET:-${STOCKSYNC_SECRET_ID:-}}" ]; then
        database=$(secret_arn "${STOCKSYNC_DATABASE_SECRET:-$STOCKSYNC_SECRET_ID}")
    fi
    if [ -n "${STOCKSYNC_TUSHARE_TOKEN:-}" ]; then
        say "storing TUSHARE_TOKEN in the secret $STACK/tushare"
        tushare=$(SECRET_VALUE=$STOCKSYNC_TUSHARE_TOKEN store_secret "$STACK/tushare" TUSHARE_TOKEN)
    elif [ -n "${STOCKSYNC_TUSHARE_SECRET:-${STOCKSYNC_SECRET_ID:-}}" ]; then
        tushare=$(secret_arn "${STOCKSYNC_TUSHARE_SECRET:-$STOCKSYNC_SECRET_ID}")
    fi
    if [ -n "${STOCKSYNC_DATABASE_URL:-}${STOCKSYNC_DATABASE_SECRET:-}${STOCKSYNC_SECRET_ID:-}" ] && [ -z "$database" ]; then
        die "could not find or store the database secret"
    fi
    [ -n "$database" ] && params+=("DatabaseSecretArn=$database")
    [ -n "$tushare" ] && params+=("TushareSecretArn=$tushare")
    [ -n "${STOCKSYNC_API_TOKENS:-}" ] && params+=("ApiTokens=$STOCKSYNC_API_TOKENS")
    [ -n "${STOCKSYNC_PUBLIC_READ:-}" ] && params+=("PublicRead=$STOCKSYNC_PUBLIC_READ")
    [ -n "${STOCKSYNC_CORS_ALLOW_ORIGINS:-}" ] && params+=("CorsAllowOrigins=$STOCKSYNC_CORS_ALLOW_ORIGINS")
    [ -n "${STOCKSYNC_SECRETS_REVISION:-}" ] && params+=("SecretsRevision=$STOCKSYNC_SECRETS_REVISION")
    [ -n "${STOCKSYNC_NOTIFY_EMAIL:-}" ] && params+=("NotifyEmail=$STOCKSYNC_NOTIFY_EMAIL")
    [ -n "${STOCKSYNC_NOTIFY_WEBHOOKS:-}" ] && params+=("NotifyWebhooks=$STOCKSYNC_NOTIFY_WEBHOOKS")
    [ -n "${LOG_RETENTION_DAYS:-}" ] && params+=("LogRetentionDays=$LOG_RETENTION_DAYS")
    if ! "$AWS" cloudformation describe-stacks --stack-name "$STACK" >/dev/null 2>&1; then
        { [ -n "$database" ] && [ -n "$tushare" ] && [ -n "${STOCKSYNC_API_TOKENS:-}" ]; } ||
            die "first deploy of $STACK: set STOCKSYNC_DATABASE_SECRET (or STOCKSYNC_DATABASE_URL), STOCKSYNC_TUSHARE_SECRET (or STOCKSYNC_TUSHARE_TOKEN) and STOCKSYNC_API_TOKENS"
    fi

    say "packaging stage $STAGE into $OUT/sam"
    local vpc=()
    [ -n "${STOCKSYNC_SUBNET_IDS:-}" ] && vpc+=(--subnet-ids "$STOCKSYNC_SUBNET_IDS")
    [ -n "${STOCKSYNC_SECURITY_GROUP_IDS:-}" ] && vpc+=(--security-group-ids "$STOCKSYNC_SECURITY_GROUP_IDS")
    "$PY" deploy/package.py --stage "$STAGE" --format sam --out "$OUT" ${vpc[@]+"${vpc[@]}"}

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
