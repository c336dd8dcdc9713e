"""Training data: where it is (`tables`), how rows are split (`splits`), how raw rows become the
model's features (`preprocess`, an ONNX graph fitted on the training split), and how workers read
it as Ray Datasets (`ray_io`)."""

from runtime.data.tables import DatasetError, TableInfo, inspect_table, read_frame

__all__ = ["DatasetError", "TableInfo", "inspect_table", "read_frame"]
