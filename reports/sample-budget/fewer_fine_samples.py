"""PSNR of fewer fine samples: python fewer_fine_samples.py SCENE CHECKPOINT [SUBSET] [SCALE] [NC+NF,...]."""
import sys
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene
from nerf_eval.metrics import psnr
scene_spec, ckpt = sys.argv[1:3]
subset = sys.argv[3] if len(sys.argv) > 3 else "test"
scale = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
budgets = sys.argv[5] if len(sys.argv) > 5 else "64+128,64+96,64+64,64+48,64+32"
scene, pair = load_scene(scene_spec), load_checkpoint(ckpt)
if scale != 1.0:
    scene = scene.rescaled(scale)
views = list(scene.subset(subset))[:4]
for budget in budgets.split(","):
    nc, nf = (int(n) for n in budget.split("+"))
    s = RenderSettings(white_bkgd=scene.white_bkgd, n_coarse=nc, n_fine=nf, lindisp=False)
    ps = [psnr(render_chunked(pair, scene.rays(v), s)["rgb"], scene.target(v).reshape(-1, 3)) for v in views]
    print(subset, nc, nf, [round(p, 2) for p in ps], round(sum(ps) / len(ps), 3), flush=True)
