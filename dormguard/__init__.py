"""What starts both sides: the `dormguard` command line and the demo.

edge/ and gateway/ never import each other (tests/unit/test_import_boundaries.py); this package
is the one place that knows both, as composition roots do.
"""
