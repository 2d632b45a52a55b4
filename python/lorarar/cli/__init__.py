"""The ``lorarar`` command line."""
