"""Launch packaged Unreal Engine binaries with UnrealCV (or attach to running ones), wait until
their UnrealCV server answers, restart them when they die mid-capture.

    from datagen.ue_launcher import UEInstance, InstancePool
"""
from datagen.ue_launcher.instance import LaunchError, UEInstance, ue_command
from datagen.ue_launcher.pool import InstancePool

__all__ = ["LaunchError", "UEInstance", "InstancePool", "ue_command"]
