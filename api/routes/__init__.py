"""HTTP endpoints by topic, each an APIRouter (or the helpers of one) included by api/app.py."""
