"""Running work: the Python SDK and CLI, job specs and their store, the controller, training,
compression, inference, model artifacts and signatures, audit and access control."""
