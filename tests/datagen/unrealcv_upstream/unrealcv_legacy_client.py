"""pytest plugin (``-p unrealcv_legacy_client``) for running the UnrealCV plugin's own server tests
(github.com/unrealcv/unrealcv, ``test/server``) unmodified with the installed ``unrealcv`` client.

Those tests do ``from unrealcv import client``: the module-level default client
``Client(("localhost", 9000), "inet")`` that older clients defined "for legacy tests/scripts"
and that client 1.3.x no longer has. This plugin puts exactly that object back before the tests'
conftest is imported; nothing else is changed.
"""
import unrealcv

if not hasattr(unrealcv, "client"):
    unrealcv.client = unrealcv.Client(("localhost", 9000), "inet")
