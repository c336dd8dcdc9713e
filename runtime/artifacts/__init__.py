"""Model artifacts: directories of model files signed in the OpenSSF model-signing format, and
verified before anything in them is loaded."""
