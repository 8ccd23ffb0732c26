"""Test support inside the package: named kill points and barriers that tests arm through
the environment (they do nothing otherwise). Imports nothing of hposweep."""
