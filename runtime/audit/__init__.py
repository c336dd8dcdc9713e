"""The signed, hash-chained audit log (`log.AuditLog`) and its verification (`verify.verify_log`)."""
