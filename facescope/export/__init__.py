"""Export to deployment formats (ONNX)."""

from facescope.export.onnx import ExportError, ExportResult, ParityCheck, export_onnx, output_names, verify_export

__all__ = ["ExportError", "ExportResult", "ParityCheck", "export_onnx", "output_names", "verify_export"]
