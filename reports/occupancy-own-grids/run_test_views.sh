#!/bin/sh
# The test-view measurements here, in the order they ran (from the repository root). An argument names
# another output directory (reports/occupancy-margin ran the same commands into its own).
set -e
D=${1:-reports/occupancy-own-grids}
E=.venv/bin/nerf-eval
$E report --checkpoint checkpoints/forward/checkpoint.pt --scene forward --scale 0.5 --latency-rays 1024 \
  --compressors samples+occupancy,samples+occupancy+coarse-grid,samples+occupancy+coarse-grid+int8-ptq-both,samples:48:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid \
  --out $D/forward
$E report --checkpoint checkpoints/object/checkpoint.pt --scene object --views 0,1,2,3 --scale 0.5 --latency-rays 1024 \
  --compressors samples+occupancy,samples+occupancy+coarse-grid,samples+occupancy+coarse-grid+int8-ptq-both,samples:48:coarse=32+occupancy+coarse-grid \
  --out $D/object
$E report --checkpoint checkpoints/flower/checkpoint.pt --scene ../shared/data/nerf_llff_data/flower --scale 0.25 --latency-rays 1024 \
  --compressors samples:32:coarse=32+occupancy,samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both \
  --out $D/flower
W=reports/whole-view-latency/whole_view.py
.venv/bin/python $W forward checkpoints/forward/checkpoint.pt 0.5 samples+occupancy+coarse-grid,samples+occupancy+coarse-grid+int8-ptq-both,samples:48:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid > $D/whole-view.log
.venv/bin/python $W object checkpoints/object/checkpoint.pt 0.5 samples+occupancy+coarse-grid,samples+occupancy+coarse-grid+int8-ptq-both,samples:48:coarse=32+occupancy+coarse-grid >> $D/whole-view.log
.venv/bin/python $W ../shared/data/nerf_llff_data/flower checkpoints/flower/checkpoint.pt 0.25 samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both >> $D/whole-view.log
.venv/bin/python reports/coarse-grid/extra_poses.py samples+occupancy+coarse-grid,samples:48:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid > $D/extra-poses.log
