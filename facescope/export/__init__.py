"""Export to deployment formats (ONNX) and int8 quantisation. Attributes are imported lazily:
:mod:`facescope.export.onnx` needs torch, :mod:`facescope.export.quantize` only onnx and onnxruntime."""

from facescope._lazy import lazy_getattr

_ATTRIBUTES = {
    **{name: "facescope.export.onnx" for name in ("ExportError", "ExportResult", "ParityCheck", "export_onnx", "output_names", "verify_export")},
    **{name: "facescope.export.quantize" for name in ("QuantizeError", "QuantizeResult", "quantize_onnx")},
}
__all__ = sorted(_ATTRIBUTES)
__getattr__ = lazy_getattr(__name__, _ATTRIBUTES, globals())
