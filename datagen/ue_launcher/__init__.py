"""Launch packaged Unreal Engine binaries with UnrealCV (or attach to running ones), wait until
their UnrealCV server answers, restart them when they die mid-capture.

    from datagen.ue_launcher import UEInstance, InstancePool, ue_command
"""
from datagen.ue_launcher.instance import (LaunchError, UEInstance, free_port, port_is_free, probe_unrealcv,
                                          ue_command, write_unrealcv_ini)
from datagen.ue_launcher.pool import InstancePool

__all__ = ["LaunchError", "UEInstance", "InstancePool", "ue_command", "write_unrealcv_ini", "probe_unrealcv",
           "free_port", "port_is_free"]
