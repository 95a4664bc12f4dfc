"""Test doubles that speak real protocols (HTTP servers, API emulation helpers).

Shared by the unit and integration suites; importable as ``support`` because pytest puts
``tests/`` on the path (it holds the root conftest.py and no ``__init__.py``).
"""
