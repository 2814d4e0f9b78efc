"""The pure model: dataclasses and enums, no I/O. Imports nothing but ``postroom.errors``."""
