#!/bin/sh
# The test-view measurements of README.md here: the same commands as ../occupancy-own-grids, into this directory
# (from the repository root).
exec sh reports/occupancy-own-grids/run_test_views.sh reports/occupancy-margin
