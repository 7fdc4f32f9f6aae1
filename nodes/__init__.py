"""ComfyUI nodes of the CodeFormer pack: model folders are registered here, then the node tables are merged."""

from __future__ import annotations

from . import advisor_nodes, face_nodes, loaders, restore_nodes
from .folders import register_model_folders

register_model_folders()

_NODES = {**loaders.NODES, **face_nodes.NODES, **restore_nodes.NODES, **advisor_nodes.NODES}

NODE_CLASS_MAPPINGS = {node_id: cls for node_id, (cls, _name) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: name for node_id, (_cls, name) in _NODES.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
