"""The server's business rules, free of HTTP: admission, who may do what to which job, accounts
(the last-admin rule), quotas, the clusters' registry, deployments, artifact reports, the ops
page's view, and the audit events each writes (`events`). They raise the errors of `errors`
(NotFound, Conflict, Forbidden, Invalid), which the API maps to statuses in one place; nothing
here imports FastAPI."""
