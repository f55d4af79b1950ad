"""List the project's levels (maps under /Game), one per line, for batch export. Run inside the
Unreal Editor (Python Editor Script Plugin):

    UnrealEditor-Cmd RelicCapture.uproject -run=pythonscript -script="Scripts/list_levels.py"
"""
from __future__ import annotations


def level_paths(root: str = "/Game") -> list[str]:  # pragma: no cover - needs the Unreal Editor
    """Package paths of every World asset under `root`, sorted (e.g. "/Game/Maps/Level")."""
    import unreal

    reg = unreal.AssetRegistryHelpers.get_asset_registry()
    flt = unreal.ARFilter(class_names=["World"], package_paths=[root], recursive_paths=True)
    return sorted(str(a.package_name) for a in reg.get_assets(flt))


def main():  # pragma: no cover - needs the Unreal Editor
    for path in level_paths():
        print(path)


if __name__ == "__main__":  # pragma: no cover
    main()
