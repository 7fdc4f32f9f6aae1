"""ComfyUI entry point of the CodeFormer face-restoration node pack."""

try:
    import folder_paths  # noqa: F401  (always present inside ComfyUI)
except ImportError:
    # Imported outside ComfyUI: pytest imports this file as the package of the repo's tests. Expose no nodes
    # instead of failing there; inside ComfyUI any import error below still surfaces as usual.
    NODE_CLASS_MAPPINGS: dict = {}
    NODE_DISPLAY_NAME_MAPPINGS: dict = {}
else:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
