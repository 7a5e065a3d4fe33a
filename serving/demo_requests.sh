#!/usr/bin/env bash
# Sample requests against a running server (`tailwise serve`): a known user, a new user,
# an event, and the known user's changed recommendations after it.
# Usage: serving/demo_requests.sh [USER_ID]   (URL and TAILWISE_API_KEY from the environment;
# the key defaults to the one `tailwise serve --background` generated in .tailwise/api_key)
set -euo pipefail
URL=${URL:-http://127.0.0.1:8000}
KEY=${TAILWISE_API_KEY:-$(cat .tailwise/api_key 2>/dev/null || true)}
PY=${PYTHON:-.venv/bin/python}
USER_ID=${1:-$($PY -c "import pandas as pd; print(pd.read_parquet('data/features/user_profile.parquet')['user_id'].iloc[0])")}
show() { $PY -m json.tool; }
post() { curl -sS -X POST "$URL$1" -H 'Content-Type: application/json' -H "X-API-Key: $KEY" -d "$2"; }

echo "== POST /recommend for known user $USER_ID (mobile, DE)"
BEFORE=$(post /recommend "{\"user_id\": \"$USER_ID\", \"k\": 5, \"context\": {\"device\": \"mobile\", \"country\": \"DE\"}}")
echo "$BEFORE" | show
TOP=$(echo "$BEFORE" | $PY -c "import json, sys; print(json.load(sys.stdin)['items'][0]['item_id'])")

echo "== POST /recommend for a user the model has never seen"
post /recommend '{"user_id": "new-visitor-1", "k": 5, "context": {"device": "desktop", "country": "US"}}' | show

echo "== POST /events: $USER_ID buys $TOP"
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
post /events "{\"user_id\": \"$USER_ID\", \"item_id\": \"$TOP\", \"event_type\": \"purchase\", \"timestamp\": \"$NOW\", \"device\": \"mobile\", \"country\": \"DE\"}" | show

echo "== POST /recommend for $USER_ID again: $TOP is gone (bought), the list has moved"
post /recommend "{\"user_id\": \"$USER_ID\", \"k\": 5, \"context\": {\"device\": \"mobile\", \"country\": \"DE\"}}" | show
echo "OpenAPI docs: $URL/docs   metrics: $URL/metrics   stop: .venv/bin/tailwise serve --stop"
