"""A TF Serving–compatible model server (REST + gRPC) for the `saved_models/` tree."""
