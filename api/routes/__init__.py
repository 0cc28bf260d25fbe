"""HTTP endpoints kept in their own modules, each an APIRouter included by api.app."""
