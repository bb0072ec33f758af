"""Every hook fedsearch calls, in one place.

Plugins implement hooks with ``fedsearch.hookimpl``::

    from fedsearch import hookimpl

    @hookimpl
    def fedsearch_register_components(register):
        register.compressor(MyPruner)

and expose the module through an entry point in the ``fedsearch`` group of
their ``pyproject.toml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from fedsearch.host import Registrar

PROJECT_NAME = "fedsearch"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def fedsearch_register_components(register: Registrar) -> None:
    """Contribute components (compressors, architectures, datasets, ...).

    Called once per plugin, in registration order, when the component registry
    is built (``fedsearch.get_registry``), before any study is configured.

    Args:
        register: Call its methods, one per component kind, with component
            classes: ``register.compressor(MyPruner)``,
            ``register.architecture(MyNet)``, ``register.dataset``,
            ``register.partitioner``, ``register.strategy``, ``register.codec``,
            ``register.sampler``, ``register.pruner``, ``register.objective``,
            ``register.middleware``, ``register.secure_aggregator``. A name
            already taken within its kind is an error that names both plugins.

    Returns:
        Nothing; registration happens through ``register``.
    """
