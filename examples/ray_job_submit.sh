#!/usr/bin/env bash
# Submit a dltune command to a Ray cluster with `ray job submit`, token authentication on.
#
#   examples/ray_job_submit.sh [--address URL] [--no-wait] [--submission-id ID] -- tune CONFIG [key=value ...]
#   examples/ray_job_submit.sh -- automl --train_data /mnt/shared/train.parquet --label_col y ...
#
# The project directory is uploaded as the job's working dir, so the cluster runs
# this checkout's dltune (`python -m dltune ...`) with the cluster's own Python
# packages. Paths in the config (data.path, output.dir) must be ones every node
# sees: an NFS mount, hdfs://, s3://.
#
# Address: --address, else RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265 (the
# dashboard; reach a remote one through `ssh -L 8265:127.0.0.1:8265 head`).
# Token: RAY_AUTH_TOKEN, else the file in RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token
# (on the head: `ray get-auth-token`).
# Credentials (AWS_*, HADOOP_USER_PASSWORD, ...) are never put in the runtime env,
# which Ray stores and shows in its dashboard: give them to the nodes' environment
# when they are started.
#
# Follow and stop a job:  ray job logs --follow ID;  ray job status ID;  ray job stop ID
set -euo pipefail
cd "$(dirname "$0")/.."

address="${RAY_API_SERVER_ADDRESS:-http://127.0.0.1:8265}"
submit_flags=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --address) address="$2"; shift 2 ;;
    --no-wait) submit_flags+=(--no-wait); shift ;;
    --submission-id) submit_flags+=(--submission-id "$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "ray_job_submit.sh: unknown option '$1' (dltune's own arguments go after --)" >&2; exit 2 ;;
  esac
done
if [ "$#" -eq 0 ]; then
  echo "usage: examples/ray_job_submit.sh [--address URL] [--no-wait] [--submission-id ID] -- tune CONFIG [key=value ...]" >&2
  exit 2
fi

export RAY_AUTH_MODE=token
token_file="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"
if [ -z "${RAY_AUTH_TOKEN:-}" ] && [ ! -s "$token_file" ]; then
  echo "ray_job_submit.sh: no Ray auth token: set RAY_AUTH_TOKEN or write it to $token_file (run 'ray get-auth-token' on the head)" >&2
  exit 2
fi

# Only non-secret settings travel in the runtime env; the excludes keep the upload small.
runtime_env='{"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}, "excludes": [".git", ".venv", "outputs", "bench/results", "*.pt", "__pycache__"]}'

# A head just started may not have its job agent yet, and Ray answers "No available agent to submit
# job, please try again later": so it is tried again for up to DLTUNE_SUBMIT_WAIT_S seconds (180).
# Submission failed then, so no job was made, and --submission-id is still free.
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
deadline=$((SECONDS + ${DLTUNE_SUBMIT_WAIT_S:-180}))
while :; do
  set +e
  { ray job submit --address "$address" --working-dir . --runtime-env-json "$runtime_env" "${submit_flags[@]}" \
      -- "${DLTUNE_PYTHON:-python}" -m dltune "$@" 2>&1 1>&3 | tee "$errors" >&2; } 3>&1
  status=$?
  set -e
  if [ "$status" -eq 0 ] || ! grep -q "No available agent to submit job" "$errors" || [ "$SECONDS" -ge "$deadline" ]; then
    exit "$status"
  fi
  echo "ray_job_submit.sh: the cluster has no job agent up yet; trying again in 5 s" >&2
  sleep 5
done
