"""The API's routes, one module and one `APIRouter` per feature. A handler reads its request,
calls the domain (runtime/server/domain) and shapes the answer; no route module imports another."""
