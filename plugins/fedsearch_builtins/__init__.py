"""fedsearch's built-in plugins.

Each module is one plugin, registered through the ``fedsearch`` entry-point
group exactly as a third-party plugin would be.
"""
