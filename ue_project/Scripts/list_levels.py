"""List the project's levels (maps), one per line, for batch export. Run inside the Unreal Editor.

    UnrealEditor-Cmd RelicCapture.uproject -run=pythonscript -script="Scripts/list_levels.py"
"""
from __future__ import annotations


def main():  # pragma: no cover - needs the Unreal Editor
    import unreal

    reg = unreal.AssetRegistryHelpers.get_asset_registry()
    flt = unreal.ARFilter(class_names=["World"], package_paths=["/Game"], recursive_paths=True)
    for asset in sorted(reg.get_assets(flt), key=lambda a: str(a.package_name)):
        print(asset.package_name)


if __name__ == "__main__":  # pragma: no cover
    main()
