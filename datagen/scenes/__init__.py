"""Scene library: procedural families, user meshes, Unreal level metadata; collision queries."""
